// Shared helpers for the end-to-end suite: the admin API, a tiny cookie jar with manual
// redirects, a minimal HTML form reader, and `loginThroughForm` which drives
// authorize -> login page -> POST login -> (consent) -> redirect_uri the way a browser would.
import { createHash, randomBytes } from "node:crypto";
import * as oc from "openid-client";

/** Loopback redirect URI that nothing serves; the flow stops before fetching it. */
export const REDIRECT_URI = "http://127.0.0.1:9/cb";
export const POST_LOGOUT_URI = "http://127.0.0.1:9/logged-out";
export const PASSWORD = "correct horse battery staple 1";

export const uniq = (prefix) => `${prefix}-${randomBytes(5).toString("hex")}`;

export const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** OIDC Core 3.1.3.6: left half of SHA-256 of the access token, base64url. */
export const atHash = (accessToken) =>
  b64url(createHash("sha256").update(accessToken, "ascii").digest().subarray(0, 16));

async function readBody(res) {
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

// ---------------------------------------------------------------------------------------------
// Admin API

export function adminApi(gh, token = gh.secrets.GATEHOUSE_ADMIN_TOKEN) {
  async function call(method, path, body, { headers = {}, auth = `Bearer ${token}` } = {}) {
    const h = { accept: "application/json", ...headers };
    if (auth !== null) h.authorization = auth;
    if (body !== undefined) h["content-type"] = "application/json";
    const res = await fetch(gh.url + path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
    });
    return readBody(res);
  }
  const must = (r, status, what) => {
    if (r.status !== status) {
      throw new Error(`${what}: expected HTTP ${status}, got ${r.status}: ${r.text.slice(0, 500)}`);
    }
    return r.json;
  };
  return {
    call,
    async createUser(overrides = {}) {
      const username = overrides.username ?? uniq("user");
      const body = {
        username,
        email: `${username}@example.test`,
        password: PASSWORD,
        name: `Test ${username}`,
        ...overrides,
      };
      const user = must(await call("POST", "/admin/api/users", body), 201, "create user");
      return { ...user, password: body.password };
    },
    async patchUser(id, patch) {
      return must(await call("PATCH", `/admin/api/users/${encodeURIComponent(id)}`, patch), 200, "patch user");
    },
    async createClient(overrides = {}) {
      const body = {
        client_name: uniq("client"),
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [POST_LOGOUT_URI],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
        scope: "openid profile email offline_access",
        id_token_signed_response_alg: "RS256",
        first_party: true,
        ...overrides,
      };
      const c = must(await call("POST", "/admin/api/clients", body), 201, "create client");
      return { ...body, ...c };
    },
    /** A confidential machine-to-machine client: client_credentials only, no redirects. */
    async createServiceClient(overrides = {}) {
      return this.createClient({
        redirect_uris: [],
        post_logout_redirect_uris: [],
        grant_types: ["client_credentials"],
        response_types: [],
        scope: "api:read",
        first_party: false,
        ...overrides,
      });
    },
    async patchClient(id, patch) {
      return must(await call("PATCH", `/admin/api/clients/${encodeURIComponent(id)}`, patch), 200, "patch client");
    },
    async rotateSecret(id) {
      return must(await call("POST", `/admin/api/clients/${encodeURIComponent(id)}/secret`), 200, "rotate secret");
    },
  };
}

/** Every key path of a JSON value, e.g. ["users[0].id", ...], to look for leaked fields. */
export function keyPaths(value, prefix = "") {
  if (Array.isArray(value)) return value.flatMap((v, i) => keyPaths(v, `${prefix}[${i}]`));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => [`${prefix}${prefix ? "." : ""}${k}`, ...keyPaths(v, `${prefix}${prefix ? "." : ""}${k}`)]);
  }
  return [];
}

// ---------------------------------------------------------------------------------------------
// Cookie jar + manual-redirect fetch

export class CookieJar {
  constructor() { this.cookies = new Map(); this.raw = new Map(); }
  store(res) {
    for (const line of res.headers.getSetCookie?.() ?? []) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const a = attrs.map((s) => s.trim().toLowerCase());
      const maxAge = a.find((s) => s.startsWith("max-age="));
      const expires = a.find((s) => s.startsWith("expires="));
      const expired =
        (maxAge && Number(maxAge.slice(8)) <= 0) ||
        (expires && Date.parse(expires.slice(8)) <= Date.now());
      this.raw.set(name, line);
      if (expired || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  get(name) { return this.cookies.get(name); }
  set(name, value) { this.cookies.set(name, value); }
  delete(name) { this.cookies.delete(name); }
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "); }
  clone() { const j = new CookieJar(); j.cookies = new Map(this.cookies); return j; }
}

/** fetch with `redirect: manual`, sending and storing the jar's cookies. */
export async function send(jar, url, { method = "GET", headers = {}, body } = {}) {
  const h = { ...headers };
  const c = jar?.header();
  if (c) h.cookie = c;
  const res = await fetch(url, { method, headers: h, body, redirect: "manual" });
  jar?.store(res);
  return res;
}

/** POST an HTML form as a browser would (urlencoded, with Origin of the page). */
export async function postForm(jar, url, fields, { origin } = {}) {
  const u = new URL(url);
  return send(jar, u, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: origin ?? u.origin,
      accept: "text/html",
    },
    body: new URLSearchParams(fields).toString(),
  });
}

// ---------------------------------------------------------------------------------------------
// Minimal HTML form reading (enough for Gatehouse's own pages)

const decodeEntities = (s) =>
  s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");

function parseAttrs(s) {
  const out = {};
  for (const m of s.matchAll(/([^\s="'\/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return out;
}

export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = parseAttrs(m[1]);
    const inputs = [...m[2].matchAll(/<input\b([^>]*)>/gi)].map((x) => parseAttrs(x[1]));
    const buttons = [...m[2].matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)].map((x) => ({
      ...parseAttrs(x[1]),
      text: x[2].replace(/<[^>]*>/g, "").trim(),
    }));
    const fields = {};
    for (const i of inputs) {
      const type = (i.type ?? "text").toLowerCase();
      if (!i.name || ["submit", "button", "image", "reset"].includes(type)) continue;
      if ((type === "checkbox" || type === "radio") && !("checked" in i)) continue;
      fields[i.name] = i.value ?? "";
    }
    forms.push({ attrs, action: attrs.action, method: (attrs.method ?? "get").toLowerCase(), inputs, buttons, fields });
  }
  return forms;
}

export const findLoginForm = (html) => parseForms(html).find((f) => f.inputs.some((i) => i.name === "password"));
export const findConsentForm = (html) => parseForms(html).find((f) => f.buttons.some((b) => b.name === "decision"));

export const isRedirect = (res) => res.status >= 300 && res.status < 400;

const sameEndpoint = (a, b) => {
  const x = new URL(a), y = new URL(b);
  return x.origin === y.origin && x.pathname === y.pathname;
};

export class FlowError extends Error {
  constructor(message, details) { super(message); Object.assign(this, details); }
}

/**
 * Drives the browser-visible part of an authorization: follows redirects from `authorizeUrl`,
 * fills the login form (once), answers the consent page (`consent`: "allow" | "deny" | "fail"),
 * and stops at the first redirect to `redirectUri` (default: the request's redirect_uri).
 * Returns { callback: URL, params, jar, sawLogin, sawConsent, trail }.
 */
export async function loginThroughForm({
  authorizeUrl,
  username,
  password = PASSWORD,
  jar = new CookieJar(),
  consent = "allow",
  redirectUri,
  maxSteps = 15,
}) {
  let url = new URL(authorizeUrl);
  redirectUri ??= url.searchParams.get("redirect_uri");
  const trail = [];
  let sawLogin = false, sawConsent = false;
  let res = await send(jar, url, { headers: { accept: "text/html" } });
  for (let step = 0; step < maxSteps; step++) {
    trail.push(`${res.status} ${url.pathname}${url.search.slice(0, 60)}`);
    if (isRedirect(res)) {
      const loc = res.headers.get("location");
      if (!loc) throw new FlowError(`redirect ${res.status} without Location at ${url}`, { trail });
      const next = new URL(loc, url);
      if (redirectUri && sameEndpoint(next, redirectUri)) {
        return { callback: next, params: Object.fromEntries(next.searchParams), jar, sawLogin, sawConsent, trail };
      }
      url = next;
      res = await send(jar, url, { headers: { accept: "text/html" } });
      continue;
    }
    const html = await res.text();
    const login = findLoginForm(html);
    if (login && !sawLogin && res.status === 200) {
      sawLogin = true;
      const action = new URL(login.action ?? url.href, url);
      url = action;
      res = await postForm(jar, action, { ...login.fields, username, password });
      continue;
    }
    const form = findConsentForm(html);
    if (form && !sawConsent && res.status === 200) {
      sawConsent = true;
      if (consent === "fail") throw new FlowError(`unexpected consent page at ${url}`, { status: res.status, html, trail });
      const action = new URL(form.action ?? url.href, url);
      url = action;
      res = await postForm(jar, action, { ...form.fields, decision: consent });
      continue;
    }
    throw new FlowError(`flow stopped: HTTP ${res.status} at ${url} (trail: ${trail.join(" -> ")})`, {
      status: res.status, html, trail, sawLogin, sawConsent,
    });
  }
  throw new FlowError(`too many steps: ${trail.join(" -> ")}`, { trail });
}

/** Fetches the login page for `authorizeUrl` (no session): returns { jar, url, res, html, form }. */
/** A code + PKCE (S256) authorization URL for `clientId`, with fixed state and challenge. */
export function pkceAuthorizeUrl(gh, clientId, { scope = "openid" } = {}) {
  const url = new URL(`${gh.url}/oauth2/authorize`);
  for (const [k, v] of Object.entries({
    response_type: "code", client_id: clientId, redirect_uri: REDIRECT_URI, scope,
    state: "s", code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method: "S256",
  })) url.searchParams.set(k, v);
  return url;
}

export async function openLoginPage(authorizeUrl, jar = new CookieJar()) {
  let url = new URL(authorizeUrl);
  let res = await send(jar, url, { headers: { accept: "text/html" } });
  for (let i = 0; i < 5 && isRedirect(res); i++) {
    url = new URL(res.headers.get("location"), url);
    res = await send(jar, url, { headers: { accept: "text/html" } });
  }
  const html = await res.text();
  return { jar, url, res, html, form: findLoginForm(html) };
}

// ---------------------------------------------------------------------------------------------
// OAuth helpers

/** Raw token endpoint call. auth: "basic" | "post" | "none". */
export async function tokenRequest(gh, params, { clientId, clientSecret, auth = "basic" } = {}) {
  const body = new URLSearchParams(params);
  const headers = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (auth === "basic") {
    const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+");
    headers.authorization = "Basic " + Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString("base64");
  } else if (auth === "post") {
    body.set("client_id", clientId);
    body.set("client_secret", clientSecret);
  } else if (auth === "none" && clientId) {
    body.set("client_id", clientId);
  }
  const res = await fetch(`${gh.url}/oauth2/token`, { method: "POST", headers, body: body.toString() });
  return readBody(res);
}

/** Raw call to a client-authenticated endpoint (revoke, introspect) with client_secret_basic. */
export async function clientPost(gh, path, params, { clientId, clientSecret }) {
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+");
  const res = await fetch(gh.url + path, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      authorization: "Basic " + Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString("base64"),
    },
    body: new URLSearchParams(params).toString(),
  });
  return readBody(res);
}

export async function userinfo(gh, accessToken, method = "GET") {
  const res = await fetch(`${gh.url}/oauth2/userinfo`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" },
  });
  return readBody(res);
}

/** openid-client Configuration for a client created through the admin API. */
export async function oidcConfig(gh, c) {
  const meta = { id_token_signed_response_alg: c.id_token_signed_response_alg ?? "RS256" };
  if (c.client_secret) meta.client_secret = c.client_secret;
  const auth =
    c.token_endpoint_auth_method === "none"
      ? oc.None()
      : c.token_endpoint_auth_method === "client_secret_post"
        ? oc.ClientSecretPost(c.client_secret)
        : oc.ClientSecretBasic(c.client_secret);
  return oc.discovery(new URL(gh.url), c.client_id, meta, auth, { execute: [oc.allowInsecureRequests] });
}

/** A fresh PKCE/state/nonce set and the authorization URL for it. */
export async function authRequest(config, { scope = "openid profile email", redirectUri = REDIRECT_URI, extra = {} } = {}) {
  const verifier = oc.randomPKCECodeVerifier();
  const challenge = await oc.calculatePKCECodeChallenge(verifier);
  const state = oc.randomState();
  const nonce = oc.randomNonce();
  const url = oc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, challenge, state, nonce, redirectUri };
}

/**
 * Full code flow through the login form and openid-client's token exchange (validates the ID
 * token). Returns { tokens, claims, jar, callback, req }.
 */
export async function codeFlow(config, user, { scope, jar, consent = "allow", extra } = {}) {
  const req = await authRequest(config, { scope, extra });
  const flow = await loginThroughForm({ authorizeUrl: req.url, username: user.username, password: user.password, jar, consent });
  const tokens = await oc.authorizationCodeGrant(config, flow.callback, {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
  });
  return { tokens, claims: tokens.claims(), jar: flow.jar, callback: flow.callback, flow, req };
}

/** Asserts helper: an openid-client call rejected with an OAuth error code. */
export async function oauthErrorOf(promise) {
  try {
    await promise;
  } catch (e) {
    if (e?.error) return e.error;
    const ch = e?.cause?.[0]?.parameters?.error;
    if (ch) return ch;
    if (e?.response) {
      try { return (await e.response.clone().json()).error; } catch {}
    }
    return `unexpected ${e?.name}: ${e?.message}`;
  }
  return "no error";
}

/** Debian's Chromium, headless, through playwright-core (the browser suites share these flags). */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * Runs `fn(page, context)` in a fresh browser context (no cookies), closed afterwards, and fails
 * if a Gatehouse page threw a script error.
 */
export async function withPage(browser, fn) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  try {
    const out = await fn(page, context);
    if (errors.length) throw new Error(`script errors on Gatehouse pages: ${errors.join("; ")}`);
    return out;
  } finally {
    await context.close();
  }
}

/**
 * A relying party's redirect_uri for browser tests: a loopback server answering a small page,
 * calling `onHit(url)` for each request. Returns the server and its base URL.
 */
export async function callbackServer(onHit = () => {}) {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    onHit(req.url);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>callback</title><p>callback received</p>");
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}
