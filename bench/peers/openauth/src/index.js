// Minimal Worker around @openauthjs/openauth (installed from npm, pinned in
// bench/package-lock.json): the issuer, its password provider with the default UI and hasher,
// KV storage. A setup route seeds one user the way the password provider stores them (its own
// hasher, its own storage key), standing in for the e-mail verification step of registration.
import { issuer } from "@openauthjs/openauth";
import { CloudflareStorage } from "@openauthjs/openauth/storage/cloudflare";
import { Storage } from "@openauthjs/openauth/storage/storage";
import { PasswordProvider, ScryptHasher } from "@openauthjs/openauth/provider/password";
import { PasswordUI } from "@openauthjs/openauth/ui/password";
import { createSubjects } from "@openauthjs/openauth/subject";
import { object, string } from "valibot";

const subjects = createSubjects({ user: object({ id: string() }) });

// Workaround for a bug in openauth 0.4.3's CloudflareStorage: it turns an expiry date back into
// `expirationTtl` with Math.floor, so its 60-second authorization codes (and refresh-reuse
// marks) are often written with a TTL of 59, which KV refuses (minimum 60) and the flow fails
// with server_error. Clamp to KV's minimum; nothing else changes.
const kvMinTtl = (ns) => ({
  get: (...a) => ns.get(...a),
  put: (k, v, o) => ns.put(k, v, o?.expirationTtl !== undefined ? { ...o, expirationTtl: Math.max(60, o.expirationTtl) } : o),
  delete: (k) => ns.delete(k),
  list: (o) => ns.list(o),
});

function app(env) {
  return issuer({
    subjects,
    storage: CloudflareStorage({ namespace: kvMinTtl(env.AUTH_KV) }),
    providers: {
      password: PasswordProvider(
        PasswordUI({ sendCode: async (email, code) => console.log("code", email, code) }),
      ),
    },
    success: async (ctx, value) => ctx.subject("user", { id: value.email }),
  });
}

let cached;
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__setup/user" && request.method === "POST") {
      if (!env.SETUP_TOKEN || request.headers.get("authorization") !== `Bearer ${env.SETUP_TOKEN}`) {
        return new Response("forbidden", { status: 403 });
      }
      const { email, password } = await request.json();
      const storage = CloudflareStorage({ namespace: kvMinTtl(env.AUTH_KV) });
      await Storage.set(storage, ["email", email.toLowerCase(), "password"], await ScryptHasher().hash(password));
      return new Response(null, { status: 201 });
    }
    if (url.pathname === "/healthz") return new Response("ok");
    cached ??= app(env);
    return cached.fetch(request, env, ctx);
  },
};
