// Feedback tokens, minted with WebCrypto exactly as the Python SDK mints them (likeloop/_token.py):
//   llft_<base64url(JSON {k, r, e, u | n, t?, o?})>.<base64url(HMAC-SHA256(secret, payload))>
// where secret = HMAC-SHA256(key = the API key, "likeloop feedback token v1") and k is the first
// 12 hex digits of sha256(API key). The service accepts them on POST /v1/feedback.

const LABEL = "likeloop feedback token v1";
export const MAX_TOKEN_TTL_S = 7 * 86400;
export const TOKEN_TYPES = ["like", "dislike", "rating", "comment", "correction", "comparison"] as const;
export const DEFAULT_TOKEN_TYPES = ["like", "dislike", "rating", "comment"];

const encoder = new TextEncoder();
const bytes = (text: string) => new Uint8Array(encoder.encode(text));

export function b64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function hmac(key: Uint8Array<ArrayBuffer>, message: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, message));
}

export interface TokenClaims {
  apiKey: string;
  responseId: string;
  ttlSeconds: number;
  userId?: string;
  types: string[];
  other?: string;
}

export async function mintToken(c: TokenClaims): Promise<string> {
  const ttl = Math.min(Math.max(1, c.ttlSeconds), MAX_TOKEN_TTL_S);
  const keyId = hex(await crypto.subtle.digest("SHA-256", bytes(c.apiKey))).slice(0, 12);
  const claims: Record<string, unknown> = { k: keyId, r: c.responseId, e: Math.floor(Date.now() / 1000 + ttl) };
  if (c.userId !== undefined) claims.u = c.userId;
  else claims.n = b64url(crypto.getRandomValues(new Uint8Array(9)));
  const defaults = c.types.length === DEFAULT_TOKEN_TYPES.length && c.types.every((t, i) => t === DEFAULT_TOKEN_TYPES[i]);
  if (!defaults) claims.t = c.types;
  if (c.other !== undefined) claims.o = c.other;
  const payload = b64url(bytes(JSON.stringify(claims)));
  const secret = await hmac(bytes(c.apiKey), bytes(LABEL));
  const signature = b64url(await hmac(secret, bytes(payload)));
  return `llft_${payload}.${signature}`;
}
