// The load driver: one process, separate from every system under test, that drives one scenario
// against one system and prints its measurements as JSON on stdout. Every system gets exactly
// this driver, with the same concurrency, bounds and HTTP client (undici, keep-alive).
//
// Input (JSON on stdin): { system, scenario, concurrency, durationMs, maxOps, warmupMs, warmupOps }
//   system: { name, kind, base, endpoints: { authorize, token, discovery, jwks }, client, user, ... }
// Output (JSON on stdout): { ops, ok, errors, statuses, seconds, rate, p50, p99, mean, requestsPerOp, firstError }
//
// An "op" is one request for the read and token scenarios, and one whole flow (every request of
// it, redirects and form posts included) for the authorization code scenarios.
import { createHash, randomBytes } from "node:crypto";
import { Pool } from "undici";

const spec = JSON.parse(await new Promise((ok) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d)).on("end", () => ok(s));
}));
const { system: sys, scenario } = spec;

// ---------------------------------------------------------------------------------------------
// HTTP with keep-alive pools, a cookie jar per lane, no automatic redirects

const pools = new Map();
function pool(origin) {
  let p = pools.get(origin);
  if (!p) {
    p = new Pool(origin, { connections: spec.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    pools.set(origin, p);
  }
  return p;
}

class Jar {
  constructor() { this.c = new Map(); }
  header() { return [...this.c].map(([k, v]) => `${k}=${v}`).join("; "); }
  store(setCookie) {
    if (!setCookie) return;
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a) || /^\s*expires\s*=.*19[67]\d/i.test(a));
      if (!value || expired) this.c.delete(name);
      else this.c.set(name, value);
    }
  }
}

let requestCount = 0;
async function http(method, url, { headers = {}, body, jar, form } = {}) {
  const u = new URL(url);
  const h = { ...headers };
  if (jar?.c.size) h.cookie = jar.header();
  if (form) {
    h["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  }
  requestCount++;
  const res = await pool(u.origin).request({ method, path: u.pathname + u.search, headers: h, body });
  const text = await res.body.text();
  jar?.store(res.headers["set-cookie"]);
  return { status: res.statusCode, headers: res.headers, text, url: u.href };
}

class HttpError extends Error {
  constructor(res, what) {
    super(`${what}: HTTP ${res.status} from ${res.url}: ${res.text.slice(0, 300).replace(/\s+/g, " ")}`);
    this.status = res.status;
  }
}
const expect2xx = (res, what) => {
  if (res.status < 200 || res.status > 299) throw new HttpError(res, what);
  return res;
};

// ---------------------------------------------------------------------------------------------
// A browser-less user agent: follows redirects by hand, fills in and posts login forms

const b64url = (b) => Buffer.from(b).toString("base64url");
const decodeEntities = (s) => s
  .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
  .replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([\w:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return out;
}
/** The login form of a page (the form with a password field), filled in for `user`. */
function fillLoginForm(html, pageUrl, user) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const form = forms.find((m) => /type\s*=\s*["']?password/i.test(m[2]));
  if (!form) return null;
  const f = attrs(form[1]);
  const fields = {};
  for (const m of form[2].matchAll(/<input\b([^>]*)>/gi)) {
    const a = attrs(m[1]);
    if (!a.name) continue;
    if (a.type === "password") fields[a.name] = user.password;
    else if (/^(username|login|email)$/i.test(a.name)) fields[a.name] = a.name === "email" ? user.email : user.username;
    else if (a.type !== "checkbox" && a.type !== "submit") fields[a.name] = a.value ?? "";
  }
  return { action: new URL(f.action || pageUrl, pageUrl).href, method: (f.method || "get").toUpperCase(), fields };
}

function tokenAuth(form) {
  const c = sys.client;
  if (sys.tokenAuth === "none") return { headers: {}, form: { ...form, client_id: c.client_id } };
  const basic = Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString("base64");
  return { headers: { authorization: `Basic ${basic}` }, form };
}
async function token(form, what) {
  const a = tokenAuth(form);
  const res = expect2xx(await http("POST", sys.base + sys.endpoints.token, { headers: { accept: "application/json", ...a.headers }, form: a.form }), what);
  const json = JSON.parse(res.text);
  if (!json.access_token) throw new Error(`${what}: no access_token in ${res.text.slice(0, 200)}`);
  return json;
}

/**
 * authorize -> (login page -> POST login ->)* redirects -> redirect_uri?code -> token.
 * `login`: whether a login form may be shown (false: an SSO session must answer at once).
 */
async function codeFlow(jar, { login, scope, extra = {}, user }) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const q = new URLSearchParams({
    response_type: "code", client_id: sys.client.client_id, redirect_uri: sys.client.redirect_uri,
    scope, state, code_challenge: b64url(createHash("sha256").update(verifier).digest()), code_challenge_method: "S256",
    ...extra,
  });
  let res = await http("GET", `${sys.base}${sys.endpoints.authorize}?${q}`, { jar });
  let code;
  for (let step = 0; step < 12 && !code; step++) {
    if (res.status >= 300 && res.status < 400 && res.headers.location) {
      const loc = new URL(res.headers.location, res.url);
      if (loc.href.startsWith(sys.client.redirect_uri)) {
        if (loc.searchParams.get("error")) throw new Error(`authorize: error redirect ${loc.search}`);
        if (loc.searchParams.get("state") !== state) throw new Error("authorize: state mismatch");
        code = loc.searchParams.get("code");
        if (!code) throw new Error(`authorize: no code in ${loc.href}`);
        break;
      }
      res = await http("GET", loc.href, { jar });
      continue;
    }
    if (res.status === 200) {
      const form = fillLoginForm(res.text, res.url, user);
      if (!form) throw new HttpError(res, "authorize: a page without a login form");
      if (!login) throw new HttpError(res, "authorize: login form shown although an SSO session exists");
      res = await http(form.method, form.action, { jar, form: form.fields });
      continue;
    }
    throw new HttpError(res, "authorize");
  }
  if (!code) throw new Error("authorize: too many steps");
  return token({ grant_type: "authorization_code", code, redirect_uri: sys.client.redirect_uri, code_verifier: verifier }, "token (authorization_code)");
}

const gatewayUrl = () => `${sys.gatewayBase ?? sys.base}${sys.gatewayPath}`;
const loginScope = () => sys.offlineScope ?? "openid offline_access";
const loginExtra = () => sys.loginExtra ?? {};

// ---------------------------------------------------------------------------------------------
// Scenarios: setup(lane) runs before timing; op(lane) is what is timed.

const scenarios = {
  empty: { op: async () => expect2xx(await http("GET", sys.base + "/"), "GET /") },
  discovery: { op: async () => expect2xx(await http("GET", sys.base + sys.endpoints.discovery), "discovery") },
  jwks: { op: async () => expect2xx(await http("GET", sys.base + sys.endpoints.jwks), "jwks") },
  client_credentials: {
    op: async () => token({ grant_type: "client_credentials", scope: sys.ccScope ?? "api:read" }, "token (client_credentials)"),
  },
  refresh_token: {
    // Refresh tokens rotate (the old one dies; reuse may revoke the family), so no token is ever
    // replayed: each lane starts from its own code flow and always presents the newest token.
    setup: async (lane) => {
      lane.jar = new Jar();
      const t = await codeFlow(lane.jar, { login: true, scope: loginScope(), extra: loginExtra(), user: lane.user });
      if (!t.refresh_token) throw new Error("code flow returned no refresh_token");
      lane.rt = t.refresh_token;
    },
    op: async (lane) => {
      const t = await token({ grant_type: "refresh_token", refresh_token: lane.rt }, "token (refresh_token)");
      if (t.refresh_token) lane.rt = t.refresh_token;
    },
  },
  code_flow_login: {
    op: async (lane) => codeFlow(new Jar(), { login: true, scope: loginScope(), extra: loginExtra(), user: lane.user }),
  },
  code_flow_session: {
    setup: async (lane) => {
      lane.jar = new Jar();
      if (sys.sessionLogin !== false) await codeFlow(lane.jar, { login: true, scope: loginScope(), extra: loginExtra(), user: lane.user });
    },
    op: async (lane) => codeFlow(lane.jar, { login: false, scope: "openid", extra: sys.sessionExtra ?? { prompt: "none" } }),
  },
  gateway: {
    setup: async (lane) => {
      lane.jar = new Jar();
      await codeFlow(lane.jar, { login: true, scope: "openid", user: lane.user });
      // The app has its own host: carry the SSO session there once (gateway start, one-time
      // code, callback), as a browser's first visit does. The timed op is a signed-in GET.
      let res = await http("GET", gatewayUrl(), { jar: lane.jar });
      for (let step = 0; step < 6 && res.status >= 300 && res.status < 400; step++) {
        res = await http("GET", new URL(res.headers.location, res.url).href, { jar: lane.jar });
      }
      expect2xx(res, "gateway sign-in");
    },
    op: async (lane) => expect2xx(await http("GET", gatewayUrl(), { jar: lane.jar }), "gateway"),
  },
  origin: { op: async () => expect2xx(await http("GET", `${sys.base}${sys.originPath}`), "origin") },
};

// ---------------------------------------------------------------------------------------------
// Closed-loop lanes, bounded in count and time

const sc = scenarios[scenario];
if (!sc) throw new Error(`unknown scenario ${scenario}`);
// One user per lane: concurrent sign-ins of one account are what a lockout policy refuses
// (Gatehouse counts attempts in flight), and real load is many users.
const lanes = Array.from({ length: spec.concurrency }, (_, i) => ({ i, user: sys.users?.[i % sys.users.length] }));
if (sc.setup) await Promise.all(lanes.map((l) => sc.setup(l)));

async function phase(ms, maxOps, record) {
  const lat = [];
  const statuses = {};
  let started = 0, errors = 0, firstError = null;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(lanes.map(async (lane) => {
    while (performance.now() < end && started < maxOps) {
      started++;
      const t = performance.now();
      try {
        await sc.op(lane);
        if (record) lat.push(performance.now() - t);
        statuses["2xx"] = (statuses["2xx"] ?? 0) + 1;
      } catch (e) {
        errors++;
        const k = e.status ? String(e.status) : "error";
        statuses[k] = (statuses[k] ?? 0) + 1;
        firstError ??= String(e.message ?? e);
        if (scenario === "refresh_token" && sc.setup) await sc.setup(lane).catch(() => {});
      }
    }
  }));
  return { lat, statuses, started, errors, firstError, seconds: (performance.now() - t0) / 1000 };
}

if (spec.warmupMs > 0 || spec.warmupOps > 0) await phase(spec.warmupMs || 60_000, spec.warmupOps || Infinity, false);
const before = requestCount;
const r = await phase(spec.durationMs, spec.maxOps, true);
const lat = r.lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
const round = (x, d = 2) => (x === null ? null : Number(x.toFixed(d)));
const result = {
  ops: r.started,
  ok: lat.length,
  errors: r.errors,
  statuses: r.statuses,
  seconds: round(r.seconds, 3),
  rate: round(lat.length / r.seconds, 1),
  p50: round(pct(0.5)),
  p99: round(pct(0.99)),
  mean: round(lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null),
  requestsPerOp: round((requestCount - before) / Math.max(1, r.started), 1),
  firstError: r.firstError,
};
process.stdout.write(JSON.stringify(result) + "\n");
await Promise.all([...pools.values()].map((p) => p.close()));
process.exit(0);
