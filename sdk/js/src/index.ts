// LikeLoop's TypeScript SDK: log LLM responses and the feedback users give them. No runtime
// dependencies; Node 18+ and any runtime with fetch (Bun, Deno, edge functions).
//
// The Python SDK's promises: calls never throw into the app and never wait on the network (they
// queue and return); the queue is bounded by count and bytes (when full, new events are dropped
// and counted); batches go gzipped (CompressionStream where present); connection errors, 408,
// 429 (honouring Retry-After) and 5xx are retried with capped, jittered backoff; flush() and
// shutdown() are bounded; ids are 128 random bits; stats() counts what happened.

import { DEFAULT_TOKEN_TYPES, TOKEN_TYPES, mintToken } from "./token.js";

export { wrapOpenAI } from "./openai.js";

export const VERSION = "0.1.0";
const RATING_SCALE = 5;
const MAX_RANKED = 20;
const EVENT_OVERHEAD = 160;

export interface LikeLoopOptions {
  apiKey?: string;
  url?: string;
  flushAt?: number;
  flushIntervalMs?: number;
  maxQueue?: number;
  maxQueueBytes?: number;
  maxBatchEvents?: number;
  timeoutMs?: number;
  maxRetries?: number;
  /** Send each event at once (await flush() before a serverless handler returns). */
  sync?: boolean;
  enabled?: boolean;
  onError?: (error: Error) => void;
  /** Replaces the runtime's fetch (a proxy, a test). */
  fetch?: typeof fetch;
  /** Retry waits: the first, and the cap (ms). */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface Message {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  name?: string;
}

export interface LogInput {
  prompt?: string;
  messages?: Message[];
  system?: string;
  response: string;
  model?: string;
  userId?: string;
  sessionId?: string;
  promptId?: string;
  metadata?: Record<string, unknown>;
  responseId?: string;
}

export interface Who {
  userId?: string;
}

export interface Stats {
  queued: number;
  sent: number;
  rejected: number;
  failed: number;
  droppedQueueFull: number;
  retries: number;
  batches: number;
  pending: number;
}

type Event = Record<string, unknown>;

function env(name: string): string | undefined {
  try {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    return proc?.env?.[name];
  } catch {
    return undefined; // not allowed to read the environment (Deno without --allow-env)
  }
}

/** 128 random bits as 32 hex digits: unguessable, so a token holder cannot post under the app's next ids. */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function retryable(status: number | null): boolean {
  return status === null || status === 408 || status === 429 || status >= 500;
}

export class LikeLoop {
  readonly apiKey: string;
  readonly url: string;
  private readonly o: Required<Omit<LikeLoopOptions, "apiKey" | "url" | "onError" | "fetch">>;
  private readonly onError?: (error: Error) => void;
  private readonly fetchFn: typeof fetch;
  private queue: [Event, number][] = [];
  private queuedBytes = 0;
  private inFlight: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private carrying = 0; // events of the batch being delivered
  private abandoned = false; // shutdown counted what was left as failed
  private readonly counters: Stats = {
    queued: 0, sent: 0, rejected: 0, failed: 0, droppedQueueFull: 0, retries: 0, batches: 0, pending: 0,
  };

  constructor(options: LikeLoopOptions = {}) {
    this.apiKey = options.apiKey ?? env("LIKELOOP_API_KEY") ?? "";
    this.url = (options.url ?? env("LIKELOOP_URL") ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
    this.o = {
      flushAt: options.flushAt ?? 100,
      flushIntervalMs: options.flushIntervalMs ?? 1000,
      maxQueue: options.maxQueue ?? 10_000,
      maxQueueBytes: options.maxQueueBytes ?? 64 * 1024 * 1024,
      maxBatchEvents: Math.min(options.maxBatchEvents ?? 500, 500),
      timeoutMs: options.timeoutMs ?? 10_000,
      maxRetries: options.maxRetries ?? 5,
      sync: options.sync ?? false,
      enabled: (options.enabled ?? true) && Boolean(options.apiKey ?? env("LIKELOOP_API_KEY")),
      retryBaseMs: options.retryBaseMs ?? 500,
      retryMaxMs: options.retryMaxMs ?? 30_000,
    };
    this.onError = options.onError;
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    if (!this.apiKey && (options.enabled ?? true)) this.report(new Error("no API key: pass apiKey or set LIKELOOP_API_KEY; events will not be sent"));
    flushAtExit(this);
  }

  // ---- public API ---------------------------------------------------------------------------

  /** Log one LLM response; returns its id at once (use it for feedback), or null if the call is invalid. */
  log(input: LogInput): string | null {
    try {
      if (typeof input?.response !== "string") return this.refuse("log() needs response as a string") || null;
      const hasPrompt = typeof input.prompt === "string";
      const hasMessages = Array.isArray(input.messages);
      if (hasPrompt === hasMessages) return this.refuse("log() needs exactly one of prompt (text) or messages (chat)") || null;
      const id = input.responseId ?? newId();
      const event: Event = { type: "response", response_id: id, event_id: id, response: input.response };
      let size = EVENT_OVERHEAD + input.response.length;
      if (hasPrompt) {
        event.prompt = input.prompt;
        size += input.prompt!.length;
      } else {
        event.messages = input.messages!.map((m) => ({ ...m }));
        size += input.messages!.reduce((n, m) => n + String(m?.content ?? "").length + 32, 0);
      }
      const optional: [keyof LogInput, string][] = [
        ["system", "system"], ["model", "model"], ["userId", "user_id"], ["sessionId", "session_id"], ["promptId", "prompt_id"],
      ];
      for (const [from, to] of optional) if (input[from] !== undefined) event[to] = input[from];
      if (input.system) size += input.system.length;
      if (input.metadata && Object.keys(input.metadata).length) {
        event.metadata = { ...input.metadata };
        size += 64 * Object.keys(input.metadata).length;
      }
      this.put(event, size);
      return id;
    } catch (error) {
      this.report(error as Error);
      return null;
    }
  }

  like(id: string, who: Who = {}): boolean {
    return this.feedback("like", id, who);
  }

  dislike(id: string, who: Who = {}): boolean {
    return this.feedback("dislike", id, who);
  }

  rate(id: string, value: number, options: Who & { scale?: number } = {}): boolean {
    const scale = options.scale ?? RATING_SCALE;
    if (!Number.isInteger(scale) || scale < 2 || scale > 100 || !Number.isInteger(value) || value < 1 || value > scale) {
      return this.refuse(`rate() needs an integer value from 1 to scale (2..100), got ${value} of ${scale}`);
    }
    return this.feedback("rating", id, options, { value, scale });
  }

  comment(id: string, text: string, who: Who = {}): boolean {
    if (typeof text !== "string" || !text) return this.refuse("comment() needs a non-empty text");
    return this.feedback("comment", id, who, { text });
  }

  correct(id: string, text: string, who: Who = {}): boolean {
    if (typeof text !== "string" || !text) return this.refuse("correct() needs the corrected text");
    return this.feedback("correction", id, who, { text });
  }

  compare(a: string, b: string, choice: "a" | "b" | "tie" | "both_bad" = "a", who: Who = {}): boolean {
    if (!["a", "b", "tie", "both_bad"].includes(choice)) return this.refuse(`compare() needs choice a, b, tie or both_bad, got ${choice}`);
    if (typeof b !== "string" || !b || a === b) return this.refuse("compare() needs two different response ids");
    return this.feedback("comparison", a, who, { other_response_id: b, choice });
  }

  rank(ids: (string | string[])[], who: Who = {}): boolean {
    if (!Array.isArray(ids)) return this.refuse("rank() needs a list of response ids, best first");
    const levels = ids.map((x) => (Array.isArray(x) ? [...x] : [x]));
    const flat = levels.flat();
    if (flat.length < 2 || flat.length > MAX_RANKED || new Set(flat).size !== flat.length || flat.some((x) => typeof x !== "string" || !x)) {
      return this.refuse(`rank() needs 2 to ${MAX_RANKED} different response ids`);
    }
    if (levels.length < 2) return this.refuse("rank() needs at least two ranks (all tied orders nothing)");
    const event: Event = { type: "ranking", response_ids: levels.map((l) => (l.length === 1 ? l[0] : l)), event_id: newId() };
    if (who.userId !== undefined) event.user_id = who.userId;
    return this.put(event, EVENT_OVERHEAD + 40 * flat.length);
  }

  /** A token a browser can post feedback on this one response with (server side only: it needs the key). */
  async feedbackToken(
    id: string,
    options: { ttlSeconds?: number; userId?: string; allow?: string[]; compareWith?: string } = {},
  ): Promise<string | null> {
    try {
      if (!this.apiKey) return this.refuse("feedbackToken() needs the client's API key") || null;
      const asked = options.allow ?? (options.compareWith ? ["comparison"] : DEFAULT_TOKEN_TYPES);
      const types = TOKEN_TYPES.filter((t) => asked.includes(t));
      if (!types.length || types.length !== new Set(asked).size) {
        this.refuse(`feedbackToken(): allow must name some of ${TOKEN_TYPES.join(", ")}`);
        return null;
      }
      return await mintToken({
        apiKey: this.apiKey, responseId: id, ttlSeconds: options.ttlSeconds ?? 3600, userId: options.userId,
        types: [...types], other: options.compareWith,
      });
    } catch (error) {
      this.report(error as Error);
      return null;
    }
  }

  /** Wait until everything queued so far is delivered or given up on, at most timeoutMs. True if nothing is left. */
  async flush(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.queue.length && !this.inFlight) return true;
      this.kick();
      const left = deadline - Date.now();
      await Promise.race([this.inFlight ?? sleep(1), sleep(Math.max(1, Math.min(left, 50)))]);
    }
    return !this.queue.length && !this.inFlight;
  }

  /** Send what is queued (for at most timeoutMs), count the rest as failed, and stop. */
  async shutdown(timeoutMs = 5000): Promise<boolean> {
    const done = await this.flush(timeoutMs);
    this.closed = true;
    live.delete(this); // nothing left to send at exit: not kept alive for it
    if (this.timer) clearTimeout(this.timer);
    if (!done) {
      this.counters.failed += this.queue.length + this.carrying;
      this.abandoned = true;
      this.queue = [];
      this.queuedBytes = 0;
    }
    return done;
  }

  stats(): Stats {
    return { ...this.counters, pending: this.queue.length };
  }

  // ---- internals ----------------------------------------------------------------------------

  private feedback(type: string, id: string, who: Who, extra: Event = {}): boolean {
    if (typeof id !== "string" || !id) return this.refuse(`${type}: the response id log() returned is needed`);
    const event: Event = { type, response_id: id, event_id: newId(), ...extra };
    if (who?.userId !== undefined) event.user_id = who.userId;
    return this.put(event, EVENT_OVERHEAD + String(extra.text ?? "").length);
  }

  private put(event: Event, size: number): boolean {
    if (!this.o.enabled || this.closed) return false;
    if (this.queue.length >= this.o.maxQueue || this.queuedBytes + size > this.o.maxQueueBytes) {
      this.counters.droppedQueueFull += 1;
      return false;
    }
    event.timestamp ??= Date.now() / 1000;
    this.queue.push([event, size]);
    this.queuedBytes += size;
    this.counters.queued += 1;
    if (this.o.sync || this.queue.length >= this.o.flushAt) this.kick();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.o.flushIntervalMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
    return true;
  }

  private kick(): void {
    if (this.inFlight || !this.queue.length) return;
    this.inFlight = this.drain().finally(() => {
      this.inFlight = null;
      if (this.queue.length && !this.closed) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const taken = this.queue.splice(0, this.o.maxBatchEvents);
      this.queuedBytes -= taken.reduce((n, [, s]) => n + s, 0);
      this.carrying = taken.length;
      try {
        await this.deliver(taken.map(([e]) => e));
      } finally {
        this.carrying = 0;
      }
    }
  }

  private async deliver(batch: Event[]): Promise<void> {
    const body = await gzip(JSON.stringify({ events: batch }));
    for (let attempt = 0; ; attempt++) {
      let status: number | null = null;
      let retryAfterMs = 0;
      let text = "";
      try {
        const controller = new AbortController();
        const timeout = setTimeout(() => controller.abort(), this.o.timeoutMs);
        (timeout as { unref?: () => void }).unref?.();
        const headers: Record<string, string> = {
          Authorization: `Bearer ${this.apiKey}`, "Content-Type": "application/json", "User-Agent": `likeloop-js/${VERSION}`,
        };
        if (body.gzipped) headers["Content-Encoding"] = "gzip";
        try {
          const response = await this.fetchFn(`${this.url}/v1/events`, { method: "POST", headers, body: body.data, signal: controller.signal });
          status = response.status;
          text = await response.text();
          retryAfterMs = Number(response.headers.get("Retry-After") ?? "0") * 1000 || 0;
        } finally {
          clearTimeout(timeout);
        }
      } catch (error) {
        text = String(error);
      }
      this.counters.batches += 1;
      if (this.abandoned) return; // shutdown counted these already
      if (status !== null && status >= 200 && status < 300) {
        this.settle(batch, text);
        return;
      }
      if (!retryable(status) || attempt >= this.o.maxRetries || this.closed) {
        this.counters.failed += batch.length;
        this.report(new Error(`${batch.length} events not delivered: ${status ? `HTTP ${status}: ${text.slice(0, 300)}` : text}`));
        return;
      }
      this.counters.retries += 1;
      const backoff = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** attempt);
      await sleep(Math.max(retryAfterMs, backoff * (0.5 + Math.random() / 2)));
    }
  }

  private settle(batch: Event[], text: string): void {
    let rejected = 0;
    try {
      const results = (JSON.parse(text) as { results?: { status?: string; error?: { message?: string } }[] }).results ?? [];
      const refused = results.filter((r) => r?.status === "rejected");
      rejected = refused.length;
      if (rejected) this.report(new Error(`${rejected} events rejected by the service: ${refused[0]?.error?.message ?? ""}`));
    } catch {
      // an answer without results: count the batch as sent
    }
    this.counters.rejected += rejected;
    this.counters.sent += batch.length - rejected;
  }

  private refuse(message: string): false {
    this.report(new Error(message));
    return false;
  }

  private report(error: Error): void {
    try {
      if (this.onError) this.onError(error);
      else console.warn(`likeloop: ${error.message}`);
    } catch {
      // the app's callback must not break the client
    }
  }
}

async function gzip(text: string): Promise<{ data: BodyInit; gzipped: boolean }> {
  const Compression = (globalThis as { CompressionStream?: typeof CompressionStream }).CompressionStream;
  if (!Compression) return { data: text, gzipped: false };
  const stream = new Blob([text]).stream().pipeThrough(new Compression("gzip"));
  return { data: new Uint8Array(await new Response(stream).arrayBuffer()), gzipped: true };
}

const live = new Set<LikeLoop>();
let hooked = false;

/** In Node, queued events are sent when the event loop empties before exit (bounded, 2 s). */
function flushAtExit(client: LikeLoop): void {
  const proc = (globalThis as { process?: { once?: (e: string, f: () => void) => void; on?: (e: string, f: () => void) => void } }).process;
  if (!proc?.on) return;
  live.add(client);
  if (hooked) return;
  hooked = true;
  proc.on("beforeExit", () => {
    for (const c of live) {
      if (c.stats().pending) {
        live.delete(c);
        void c.flush(2000);
      }
    }
  });
}
