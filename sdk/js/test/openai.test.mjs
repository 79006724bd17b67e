// wrapOpenAI with the real `openai` npm client, against a local server made here that speaks
// the chat-completions API (JSON and server-sent events), logging to the real LikeLoop service.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import OpenAI from "openai";
import { LikeLoop, wrapOpenAI } from "../dist/index.js";

const { LIKELOOP_URL: url, LIKELOOP_READ_KEY: readKey } = process.env;
const skip = !url || !readKey ? "run by tests/sdk/test_js_sdk.py, which starts the service" : false;

function provider() {
  let n = 0;
  const bodies = [];
  const srv = http.createServer((req, res) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(parts).toString());
      bodies.push(body);
      n += 1;
      const question = body.messages.at(-1).content;
      const texts = Array.from({ length: body.n ?? 1 }, (_, i) => `answer ${i} to: ${question}`);
      const id = `chatcmpl-js${n}`;
      if (!body.stream) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ id, object: "chat.completion", created: 0, model: body.model,
          choices: texts.map((t, i) => ({ index: i, message: { role: "assistant", content: t }, finish_reason: "stop" })) }));
        return;
      }
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      for (const [i, t] of texts.entries()) {
        for (const word of t.split(" ")) {
          const chunk = { id, object: "chat.completion.chunk", created: 0, model: body.model,
            choices: [{ index: i, delta: { content: word + " " }, finish_reason: null }] };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        }
      }
      res.end("data: [DONE]\n\n");
    });
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve({ srv, bodies, base: `http://127.0.0.1:${srv.address().port}/v1` })));
}

async function stored(id) {
  const res = await fetch(`${url}/v1/responses/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${readKey}` } });
  return res.status === 200 ? res.json() : null;
}

test("every answer is logged under the provider's id, streamed ones when they end", { skip }, async () => {
  const { srv, bodies, base } = await provider();
  const ll = new LikeLoop({ flushIntervalMs: 20 });
  const client = wrapOpenAI(new OpenAI({ baseURL: base, apiKey: "sk-local" }), ll);
  const completion = await client.chat.completions.create({
    model: "gpt-x", messages: [{ role: "user", content: "Capital of France?" }], likeloop: { userId: "u1" },
  });
  assert.equal(completion.choices[0].message.content, "answer 0 to: Capital of France?");
  assert.equal("likeloop" in bodies[0], false);
  const two = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi?" }], n: 2 });
  const stream = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "More?" }], stream: true });
  let text = "", streamId = "";
  for await (const chunk of stream) {
    streamId = chunk.id;
    text += chunk.choices[0].delta.content;
  }
  ll.like(completion.id, { userId: "u2" });
  assert.equal(await ll.flush(5000), true);
  const first = await stored(completion.id);
  assert.equal(first.response, "answer 0 to: Capital of France?");
  assert.equal(first.feedback.likes, 1);
  assert.equal((await stored(`${two.id}:1`)).response, "answer 1 to: Hi?");
  assert.equal((await stored(streamId)).response, text);
  await ll.shutdown(1000);
  srv.close();
});
