// wrapOpenAI(client, ll): every chat.completions.create call of an `openai` npm client logs its
// answer under the provider's id (completion.id; `<id>:<index>` per choice when n > 1); a
// streamed answer once the stream ends (or with what arrived when the app stops reading). The
// call returns the provider's own promise and object; a `likeloop` field of the body (userId,
// sessionId, promptId, metadata) never reaches the provider. Imports nothing from `openai`.

import type { LikeLoop, Message } from "./index.js";

type AnyRecord = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROLES: Record<string, Message["role"]> = { system: "system", developer: "system", user: "user", assistant: "assistant", tool: "tool" };

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === "string" ? p.text : "")).join("");
  return content == null ? "" : String(content);
}

function messagesOf(messages: unknown): Message[] {
  return (Array.isArray(messages) ? messages : []).map((m: AnyRecord) => ({
    role: ROLES[String(m?.role)] ?? "user",
    content: textOf(m?.content),
  }));
}

export function wrapOpenAI<T extends object>(client: T, ll: LikeLoop): T {
  const c = client as AnyRecord;
  const completions = c?.chat?.completions;
  if (!completions || typeof completions.create !== "function" || c.__likeloopWrapped) return client;
  const create = completions.create.bind(completions);
  completions.create = (body: AnyRecord, ...rest: unknown[]) => {
    let options: AnyRecord = {};
    let sent = body;
    if (body && typeof body === "object" && "likeloop" in body) {
      const { likeloop, ...others } = body;
      options = likeloop ?? {};
      sent = others;
    }
    const pending = create(sent, ...rest);
    try {
      const messages = messagesOf(sent?.messages);
      const log = (id: string, text: string, model: string | undefined) => {
        if (!id) return;
        ll.log({
          messages, response: text, model, responseId: id,
          userId: options.userId, sessionId: options.sessionId, promptId: options.promptId, metadata: options.metadata,
        });
      };
      Promise.resolve(pending).then(
        (result: AnyRecord) => {
          try {
            if (sent?.stream) watchStream(result, log);
            else {
              const choices: AnyRecord[] = result?.choices ?? [];
              for (const choice of choices) {
                const id = choices.length === 1 ? result.id : `${result.id}:${choice.index ?? 0}`;
                log(id, textOf(choice?.message?.content), result.model);
              }
            }
          } catch {
            // logging never breaks the app's call
          }
        },
        () => undefined, // the provider's error is the app's to handle, on the promise it got
      );
    } catch {
      // logging never breaks the app's call
    }
    return pending;
  };
  c.__likeloopWrapped = true;
  return client;
}

function watchStream(stream: AnyRecord, log: (id: string, text: string, model: string | undefined) => void): void {
  const key = Symbol.asyncIterator as unknown as string;
  const iterate = stream?.[key];
  if (typeof iterate !== "function") return;
  const original = iterate.bind(stream);
  stream[key] = async function* () {
    let id = "";
    let model: string | undefined;
    const texts = new Map<number, string[]>();
    try {
      for await (const chunk of original()) {
        try {
          id ||= chunk?.id;
          model ??= chunk?.model;
          for (const choice of chunk?.choices ?? []) {
            const part = choice?.delta?.content;
            if (typeof part === "string") texts.set(choice.index ?? 0, [...(texts.get(choice.index ?? 0) ?? []), part]);
          }
        } catch {
          // a chunk this wrapper cannot read: the app's stream goes on
        }
        yield chunk;
      }
    } finally {
      const many = texts.size > 1;
      for (const [index, parts] of [...texts.entries()].sort((a, b) => a[0] - b[0])) {
        log(many ? `${id}:${index}` : id, parts.join(""), model);
      }
    }
  };
}
