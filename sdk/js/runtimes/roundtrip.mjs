// The built SDK in another runtime (Deno, Bun): run by tests/sdk/test_js_runtimes.py against the
// real service, as `<runtime> roundtrip.mjs <url> <api key> <tag>`. Uses only what such runtimes
// share (fetch, WebCrypto, CompressionStream); prints what it did as one JSON line for the test
// to check against what the service stored. Config comes from the arguments: under Deno the
// script has no permission to read the environment, which the SDK must survive.
import { LikeLoop } from "../dist/index.js";

const args = globalThis.Deno ? globalThis.Deno.args : globalThis.process.argv.slice(2);
const [url, apiKey, tag] = args;
const errors = [];
const ll = new LikeLoop({ url, apiKey, flushIntervalMs: 20, onError: (e) => errors.push(String(e)) });

const id = ll.log({
  messages: [{ role: "user", content: `Which runtime, ${tag}?` }],
  response: `answered under ${tag}`,
  model: tag,
  userId: `asker-${tag}`,
});
ll.like(id, { userId: `voter-${tag}` });
// A batch big enough to be gzipped (CompressionStream): 150 answers of 500 characters.
const many = [];
for (let i = 0; i < 150; i++) {
  many.push(ll.log({ prompt: `bulk ${tag} ${i}`, response: "x".repeat(500), model: tag }));
}
const flushed = await ll.flush(10_000);
const token = await ll.feedbackToken(id, { ttlSeconds: 600, userId: `browser-${tag}` });
const posted = await fetch(`${url}/v1/feedback`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  body: JSON.stringify({ type: "rating", response_id: id, value: 5 }),
});
// sync mode: sent before the call that flushes returns (serverless handlers).
const sync = new LikeLoop({ url, apiKey, sync: true });
const syncId = sync.log({ prompt: `sync ${tag}?`, response: "sent at once", model: tag });
const syncFlushed = await sync.flush(5000);
const stats = ll.stats();
await ll.shutdown(2000);
await sync.shutdown(2000);
console.log(JSON.stringify({
  id, many, flushed, syncId, syncFlushed, stats, errors,
  tokenStatus: posted.status, compression: typeof CompressionStream,
}));
