// The client's own promises, against local HTTP servers made here: never throws, bounded queue,
// retries (Retry-After honoured) and give-up, bounded flush, unguessable ids, gzip bodies.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import zlib from "node:zlib";
import { LikeLoop, newId } from "../dist/index.js";

function server(answer) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(parts);
      const body = req.headers["content-encoding"] === "gzip" ? zlib.gunzipSync(raw) : raw;
      seen.push({ headers: req.headers, body: JSON.parse(body.toString()), at: Date.now() });
      const [status, payload, headers] = answer(seen.length);
      res.writeHead(status, { "Content-Type": "application/json", ...(headers ?? {}) });
      res.end(JSON.stringify(payload));
    });
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve({ srv, seen, url: `http://127.0.0.1:${srv.address().port}` })));
}

const ok = (n) => [200, { accepted: n, rejected: 0, results: [] }];

test("calls return at once and batches go gzipped with the key", async () => {
  const { srv, seen, url } = await server(() => ok(3));
  const ll = new LikeLoop({ apiKey: "k1", url, flushIntervalMs: 20 });
  const rid = ll.log({ prompt: "Q?", response: "A", model: "m", userId: "u" });
  assert.match(rid, /^[0-9a-f]{32}$/);
  assert.equal(ll.like(rid, { userId: "u2" }), true);
  assert.equal(ll.rate(rid, 4, { scale: 5 }), true);
  assert.equal(await ll.flush(2000), true);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].headers.authorization, "Bearer k1");
  assert.equal(seen[0].headers["content-encoding"], "gzip");
  assert.deepEqual(seen[0].body.events.map((e) => e.type), ["response", "like", "rating"]);
  assert.equal(ll.stats().sent, 3);
  await ll.shutdown(100);
  srv.close();
});

test("wrong arguments are refused and reported, never thrown", async () => {
  const errors = [];
  const ll = new LikeLoop({ apiKey: "k", url: "http://127.0.0.1:9", onError: (e) => errors.push(e.message) });
  assert.equal(ll.log({ prompt: "Q" }), null);
  assert.equal(ll.log({ prompt: "Q", messages: [], response: "A" }), null);
  assert.equal(ll.rate("r", 9), false);
  assert.equal(ll.compare("a", "a"), false);
  assert.equal(ll.rank(["only"]), false);
  assert.equal(ll.log(null), null);
  assert.equal(errors.length, 6);
  await ll.shutdown(10);
});

test("the queue is bounded: past it events are dropped and counted", async () => {
  const ll = new LikeLoop({ apiKey: "k", url: "http://127.0.0.1:9", maxQueue: 5, flushIntervalMs: 60_000, onError: () => {} });
  for (let i = 0; i < 8; i++) ll.log({ prompt: `Q${i}`, response: "A" });
  assert.equal(ll.stats().droppedQueueFull >= 3, true);
  await ll.shutdown(10);
});

test("5xx and 429 are retried (Retry-After honoured), a 400 is given up at once", async () => {
  const { srv, seen, url } = await server((n) => (n === 1 ? [503, {}] : n === 2 ? [429, {}, { "Retry-After": "1" }] : ok(1)));
  const ll = new LikeLoop({ apiKey: "k", url, retryBaseMs: 10, flushIntervalMs: 5 });
  ll.log({ prompt: "Q", response: "A" });
  assert.equal(await ll.flush(5000), true);
  assert.equal(seen.length, 3);
  assert.ok(seen[2].at - seen[1].at >= 900, "waited the Retry-After");
  assert.deepEqual([ll.stats().retries, ll.stats().sent], [2, 1]);
  await ll.shutdown(10);
  srv.close();
  const refused = await server(() => [400, { error: { code: "invalid_body" } }]);
  const errors = [];
  const l2 = new LikeLoop({ apiKey: "k", url: refused.url, flushIntervalMs: 5, onError: (e) => errors.push(e) });
  l2.like("r1");
  await l2.flush(2000);
  assert.deepEqual([refused.seen.length, l2.stats().failed, errors.length], [1, 1, 1]);
  await l2.shutdown(10);
  refused.srv.close();
});

test("flush and shutdown are bounded while the service is down", async () => {
  const ll = new LikeLoop({ apiKey: "k", url: "http://127.0.0.1:9", retryBaseMs: 1000, onError: () => {} });
  ll.log({ prompt: "Q", response: "A" });
  const started = Date.now();
  assert.equal(await ll.shutdown(300), false);
  assert.ok(Date.now() - started < 1500);
  assert.equal(ll.stats().failed >= 1, true);
});

test("ids are 128 random bits", () => {
  const ids = new Set(Array.from({ length: 1000 }, newId));
  assert.equal(ids.size, 1000);
});
