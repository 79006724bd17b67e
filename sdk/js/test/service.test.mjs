// The SDK against the real LikeLoop service: tests/sdk/test_js_sdk.py starts it (with the same
// embedded Redis and S3 as the Python tests) and passes its URL and keys in the environment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LikeLoop } from "../dist/index.js";

const { LIKELOOP_URL: url, LIKELOOP_API_KEY: key, LIKELOOP_READ_KEY: readKey } = process.env;
const skip = !url || !key || !readKey ? "run by tests/sdk/test_js_sdk.py, which starts the service" : false;

async function read(path) {
  const res = await fetch(url + path, { headers: { Authorization: `Bearer ${readKey}` } });
  return [res.status, await res.json()];
}

test("every kind of event reaches the service and is stored", { skip }, async () => {
  const ll = new LikeLoop({ flushIntervalMs: 20 }); // from LIKELOOP_API_KEY and LIKELOOP_URL
  const a = ll.log({ prompt: "Capital of France?", response: "Paris.", model: "m1", userId: "ann", metadata: { route: "faq" } });
  const b = ll.log({ messages: [{ role: "user", content: "Capital of France?" }], response: "Lyon.", model: "m2" });
  const c = ll.log({ prompt: "Capital of France?", response: "Nice.", model: "m3" });
  ll.like(a, { userId: "u1" });
  ll.dislike(c, { userId: "u1" });
  ll.rate(a, 5, { userId: "u2" });
  ll.comment(c, "not the capital", { userId: "u2" });
  ll.correct(c, "Paris, of course.", { userId: "u3" });
  ll.compare(a, c, "a", { userId: "u4" });
  ll.rank([a, c], { userId: "u5" });
  assert.equal(await ll.flush(10_000), true);
  const stats = ll.stats();
  assert.deepEqual([stats.sent, stats.rejected, stats.failed], [10, 0, 0]);
  const [status, response] = await read(`/v1/responses/${a}`);
  assert.equal(status, 200);
  assert.equal(response.response, "Paris.");
  assert.equal(response.feedback.likes, 1);
  const [, other] = await read(`/v1/responses/${c}`);
  assert.equal(other.feedback.correction, "Paris, of course.");
  assert.equal(b.length, 32);
  await ll.shutdown(1000);
});

test("a feedback token minted with WebCrypto is accepted by POST /v1/feedback", { skip }, async () => {
  const ll = new LikeLoop({ sync: true });
  const rid = ll.log({ prompt: "Token?", response: "Yes." });
  await ll.flush(5000);
  const token = await ll.feedbackToken(rid, { ttlSeconds: 600, userId: "browser-user" });
  assert.match(token, /^llft_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const post = (body, bearer) => fetch(url + "/v1/feedback", {
    method: "POST", headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const liked = await post({ type: "like", response_id: rid }, token);
  assert.equal(liked.status, 201, await liked.text());
  const elsewhere = await post({ type: "like", response_id: "another" }, token);
  assert.equal(elsewhere.status, 403);
  const [, response] = await read(`/v1/responses/${rid}`);
  assert.equal(response.feedback.likes, 1);
  await ll.shutdown(1000);
});
