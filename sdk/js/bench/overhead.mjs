// Per-call cost in the caller of LikeLoop's log() against posthog-node's capture(), in the same
// run: each client queues N events with a similar payload (a prompt and an answer of 430
// characters) and sends them to a local server that answers at once. Reports the median of
// rounds of the mean per call, and the ratio. Run: node bench/overhead.mjs [N]
import http from "node:http";
import { PostHog } from "posthog-node";
import { LikeLoop } from "../dist/index.js";

const N = Number(process.argv[2] ?? 20000);
const ROUNDS = 5;
const text = "x".repeat(430);

const srv = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end('{"accepted": 0, "rejected": 0, "results": [], "status": 1}');
  });
});
await new Promise((r) => srv.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${srv.address().port}`;

function time(fn) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(i);
  return Number(process.hrtime.bigint() - started) / N; // ns per call
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ours = [], theirs = [];
for (let r = 0; r < ROUNDS; r++) {
  const ll = new LikeLoop({ apiKey: "bench", url, maxQueue: N * 2, maxQueueBytes: 1 << 30, onError: () => {} });
  ours.push(time((i) => ll.log({ prompt: text, response: text, model: "m", userId: `u${i % 100}` })));
  await ll.shutdown(10_000);
  const ph = new PostHog("phc_bench", { host: url, flushAt: 100, flushInterval: 1000, maxQueueSize: N * 2 });
  theirs.push(time((i) => ph.capture({ distinctId: `u${i % 100}`, event: "llm_response", properties: { prompt: text, response: text, model: "m" } })));
  await ph.shutdown(10_000);
}
const a = median(ours), b = median(theirs);
console.log(`per call, median of ${ROUNDS} rounds of ${N} calls: likeloop log() ${(a / 1000).toFixed(2)} us, posthog-node capture() ${(b / 1000).toFixed(2)} us; likeloop / posthog = ${(a / b).toFixed(2)}`);
srv.close();
