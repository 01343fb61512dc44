// node-oidc-provider (a certified OpenID Provider; installed from npm, pinned in
// bench/package-lock.json) in its smallest honest setup on Node: the in-memory adapter (the
// default), one RSA-2048 signing key (RS256, as Gatehouse), client_credentials enabled, and a
// minimal login interaction that checks a scrypt password hash (node:crypto, N=2^14, r=8, p=1,
// the same hasher and parameters as openauth's default) and grants the requested scopes at once
// (a first-party client: no consent page, like Gatehouse's first_party clients).
// Config on stdin as JSON: { port, client: {client_id, client_secret, redirect_uris}, users: [{username, password}] }.
import { createServer } from "node:http";
import { generateKeyPairSync, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import Provider from "oidc-provider";

const cfg = JSON.parse(await new Promise((ok) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d)).on("end", () => ok(s));
}));
const scryptP = promisify(scrypt);
const SCRYPT = { N: 16384, r: 8, p: 1 };
const salt = randomBytes(16);
const users = new Map();
for (const u of cfg.users) {
  const s = randomBytes(16);
  users.set(u.username, { salt: s, hash: await scryptP(u.password, s, 32, SCRYPT) });
}
async function verifyPassword(username, password) {
  const u = users.get(username) ?? { salt, hash: Buffer.alloc(32) }; // same cost for unknown users
  const got = await scryptP(password, u.salt, 32, SCRYPT);
  return timingSafeEqual(got, u.hash) && users.has(username);
}

const issuer = `http://127.0.0.1:${cfg.port}`;
const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const provider = new Provider(issuer, {
  clients: [{
    ...cfg.client,
    grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    scope: "openid profile email offline_access api:read",
  }],
  scopes: ["openid", "profile", "email", "offline_access", "api:read"],
  jwks: { keys: [{ ...jwk, use: "sig", alg: "RS256" }] },
  cookies: { keys: [randomBytes(32).toString("base64url")] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
  },
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});
provider.proxy = false;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
async function readForm(req) {
  let s = "";
  for await (const d of req) s += d;
  return new URLSearchParams(s);
}
const callback = provider.callback();

createServer(async (req, res) => {
  try {
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split("?")[0]);
    if (!m) return callback(req, res);
    const details = await provider.interactionDetails(req, res);
    if (!m[2] && req.method === "GET") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(`<!doctype html><title>Sign in</title><form method="post" action="/interaction/${esc(details.uid)}/login">` +
        `<input name="username" autocomplete="username"><input type="password" name="password"><button>Sign in</button></form>`);
    }
    if (m[2] && req.method === "POST") {
      const form = await readForm(req);
      const username = form.get("username") ?? "";
      if (!(await verifyPassword(username, form.get("password") ?? ""))) {
        res.writeHead(401, { "content-type": "text/plain" });
        return res.end("wrong username or password");
      }
      const { params } = details;
      const grant = new provider.Grant({ accountId: username, clientId: params.client_id });
      grant.addOIDCScope(params.scope);
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { login: { accountId: username }, consent: { grantId } }, { mergeWithLastSubmission: false });
    }
    res.writeHead(405).end();
  } catch (e) {
    res.writeHead(500, { "content-type": "text/plain" }).end(String(e?.message ?? e));
  }
}).listen(cfg.port, "127.0.0.1", () => console.log(`oidc-provider ready on ${issuer}`));
