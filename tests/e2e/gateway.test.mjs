// The gateway through a real wrangler dev, in front of a real origin on loopback. Gatehouse (the
// issuer) is http://127.0.0.1:PORT; the apps live on http://localhost:PORT, another host name
// (an app on the issuer's host name is refused), so every sign-in crosses hosts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { startGatehouse, freePort } from "./harness.mjs";
import { launchChromium } from "./helpers.mjs";

let gh, appBase, origin, originPort, hanging = [];
const PASSWORD = "correct horse battery staple";

function startOrigin() {
  return new Promise(async (ok) => {
    originPort = await freePort();
    origin = createServer((req, res) => {
      if (req.url.startsWith("/app/slow")) { hanging.push(res); return; }
      if (req.url.startsWith("/app/echo-body")) {
        let n = 0;
        req.on("data", (c) => (n += c.length));
        req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ received: n })); });
        return;
      }
      res.writeHead(200, {
        "content-type": "application/json",
        "content-security-policy": "script-src 'self'",
        "x-origin": "yes",
      });
      res.end(JSON.stringify({ path: req.url, headers: req.headers }));
    });
    origin.listen(originPort, "127.0.0.1", ok);
  });
}

async function admin(path, method = "GET", body) {
  const r = await fetch(`${gh.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

class Jar {
  cookies = new Map();
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "); }
  absorb(r) {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      const [k, v] = [pair.slice(0, i), pair.slice(i + 1)];
      if (!v || /Max-Age=0/.test(c)) this.cookies.delete(k); else this.cookies.set(k, v);
    }
  }
  async get(url, init = {}) {
    const r = await fetch(url, { redirect: "manual", ...init, headers: { ...(init.headers ?? {}), cookie: this.header() } });
    this.absorb(r);
    return r;
  }
}

/** Follows the gateway login from a protected URL on `appBase`, returns the app-host jar. */
async function signIn(appBase, path) {
  const appJar = new Jar(), idp = new Jar();
  let r = await appJar.get(`${appBase}${path}`);
  assert.equal(r.status, 302);
  r = await idp.get(r.headers.get("location"));
  assert.equal(r.status, 303);
  r = await idp.get(new URL(r.headers.get("location"), gh.url).href);
  const html = await r.text();
  const field = (n) => html.match(new RegExp(`name="${n}" value="([^"]*)"`))[1];
  r = await idp.get(`${gh.url}/oauth2/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ req: field("req"), csrf: field("csrf"), username: "gwuser", password: PASSWORD }),
  });
  assert.equal(r.status, 303, await r.clone().text());
  r = await idp.get(new URL(r.headers.get("location"), gh.url).href);
  const callback = r.headers.get("location");
  assert.match(callback, /\/\.gatehouse\/callback\?code=/);
  r = await appJar.get(callback);
  assert.equal(r.status, 303);
  assert.equal(r.headers.get("location"), `${appBase}${path}`);
  return appJar;
}

before(async () => {
  await startOrigin();
  gh = await startGatehouse({ vars: { GATEHOUSE_ISSUER: "http://127.0.0.1:{port}", GATEHOUSE_ORIGIN_TIMEOUT: "2" } });
  const port = new URL(gh.url).port;
  appBase = `http://localhost:${port}`;
  assert.equal((await admin("/admin/api/users", "POST", { username: "gwuser", email: "gw@example.com", password: PASSWORD })).status, 201);
  let r = await admin("/admin/api/apps", "POST", {
    name: "Demo app", host: `localhost:${port}`, path_prefix: "/app/", origin: `http://127.0.0.1:${originPort}`,
    headers: { content_security_policy: "default-src 'self'" },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  r = await admin("/admin/api/apps", "POST", {
    name: "Down app", host: `localhost:${port}`, path_prefix: "/down/", origin: "http://127.0.0.1:9", require_login: false,
  });
  assert.equal(r.status, 201);
});

after(async () => {
  for (const res of hanging) res.destroy();
  await gh?.stop();
  await new Promise((ok) => origin?.close(ok));
});

test("an unauthenticated request is redirected to Gatehouse's login with the return URL", async () => {
  const r = await fetch(`${appBase}/app/page?x=1`, { redirect: "manual" });
  assert.equal(r.status, 302);
  const loc = new URL(r.headers.get("location"));
  assert.equal(loc.origin, gh.url, "to the issuer's host, where the SSO session lives");
  assert.equal(loc.pathname, "/oauth2/gateway");
  assert.equal(loc.searchParams.get("return_to"), `${appBase}/app/page?x=1`);
});

test("after login the request passes through with identity headers, spoofed ones stripped", async () => {
  const jar = await signIn(appBase, "/app/page?x=1");
  const r = await jar.get(`${appBase}/app/page?x=1`, {
    headers: { "x-gatehouse-user": "admin", "x-gatehouse-identity": "forged", "x-gatehouse-email": "root@example.com" },
  });
  assert.equal(r.status, 200);
  const seen = await r.json();
  assert.equal(seen.path, "/app/page?x=1");
  assert.equal(seen.headers["x-gatehouse-user"], "gwuser");
  assert.equal(seen.headers["x-gatehouse-email"], "gw@example.com");
  assert.notEqual(seen.headers["x-gatehouse-identity"], "forged");
  assert.equal(seen.headers["x-gatehouse-identity"].split(".").length, 3);
  assert.ok(!/gh_session|gh_app/.test(seen.headers.cookie ?? ""), "Gatehouse cookies never reach the origin");
  // The identity JWT verifies with Gatehouse's JWKS.
  const { createRemoteJWKSet, jwtVerify } = await import("jose");
  const jwks = createRemoteJWKSet(new URL(`${gh.url}/oauth2/jwks.json`));
  const { payload } = await jwtVerify(seen.headers["x-gatehouse-identity"], jwks, {
    issuer: gh.url, audience: `http://127.0.0.1:${originPort}`,
  });
  assert.equal(payload.preferred_username, "gwuser");
});

test("the origin's CSP is preserved and Gatehouse's is added beside it, with the other headers", async () => {
  const jar = await signIn(appBase, "/app/headers");
  const r = await jar.get(`${appBase}/app/headers`);
  assert.equal(r.headers.get("x-origin"), "yes");
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /default-src 'self'; frame-ancestors 'none'/);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  assert.equal(r.headers.get("x-frame-options"), "DENY");
  assert.ok(r.headers.get("referrer-policy"));
  assert.ok(r.headers.get("permissions-policy"));
  assert.equal(r.headers.get("cross-origin-opener-policy"), "same-origin");
  assert.equal(r.headers.get("strict-transport-security"), null, "never HSTS on plain http");
});

test("a request body streams through to the origin", async () => {
  const jar = await signIn(appBase, "/app/echo-body");
  const body = new Uint8Array(2 * 1024 * 1024).fill(7);
  const r = await jar.get(`${appBase}/app/echo-body`, { method: "POST", body });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { received: body.length });
});

test("an app on another host gets its own session through the one-time callback", async () => {
  const jar = await signIn(appBase, "/app/cross");
  assert.ok(jar.cookies.has("gh_app"));
  const r = await jar.get(`${appBase}/app/cross`);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).headers["x-gatehouse-user"], "gwuser");
  // The issuer's host serves none of the app: its paths there are Gatehouse's 404.
  assert.equal((await fetch(`${gh.url}/app/cross`, { redirect: "manual" })).status, 404);
});

test("an unreachable origin answers 502 and a hanging one 504, without hanging", async () => {
  const down = await fetch(`${appBase}/down/x`);
  assert.equal(down.status, 502);
  assert.match(await down.text(), /cannot be reached/);
  const jar = await signIn(appBase, "/app/slow");
  const t = Date.now();
  const slow = await jar.get(`${appBase}/app/slow`);
  assert.equal(slow.status, 504);
  assert.ok(Date.now() - t < 10_000);
});

test("Gatehouse's own pages carry a strict CSP: no unsafe-inline, no script on a page without one", async () => {
  // The login page with the Turnstile widget is the one page with a script (by nonce: lockout.test.mjs).
  const r = await fetch(`${gh.url}/oauth2/authorize?client_id=nobody`);
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(r.headers.get("x-frame-options"), "DENY");
  const css = await fetch(`${gh.url}/static/gatehouse.css`);
  assert.equal(css.headers.get("x-content-type-options"), "nosniff");
});

test("apps load from a file idempotently (scripts/load-apps.mjs)", async () => {
  const { execFileSync } = await import("node:child_process");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const file = join(mkdtempSync(join(tmpdir(), "apps-")), "apps.json");
  writeFileSync(file, JSON.stringify([{ id: "from-file", name: "From file", host: "files.example.com", origin: "https://o.example.com" }]));
  const env = { ...process.env, GATEHOUSE_ADMIN_TOKEN: gh.secrets.GATEHOUSE_ADMIN_TOKEN };
  const run = () => execFileSync(process.execPath, ["scripts/load-apps.mjs", gh.url, file], { env, cwd: new URL("../..", import.meta.url).pathname }).toString();
  assert.match(run(), /created from-file/);
  assert.match(run(), /updated from-file/);
  const { body } = await admin("/admin/api/apps/from-file");
  assert.equal(body.host, "files.example.com");
  assert.equal(body.headers.hsts_max_age, 31536000);
});

test("a real app verifies the identity itself with jose, and a browser session goes through the gateway to it", async () => {
  // The app trusts nothing but a token it can verify: Gatehouse's signature (JWKS), issuer, its own
  // origin as audience, and the token's type.
  const { createRemoteJWKSet, jwtVerify } = await import("jose");
  const jwks = createRemoteJWKSet(new URL(`${gh.url}/oauth2/jwks.json`));
  const appPort = await freePort();
  const self = `http://127.0.0.1:${appPort}`;
  const app = createServer(async (req, res) => {
    try {
      const { payload } = await jwtVerify(req.headers["x-gatehouse-identity"] ?? "", jwks, {
        issuer: gh.url, audience: self, typ: "gatehouse-identity+jwt",
      });
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><title>App</title><h1 id="hello">Hello ${payload.preferred_username}</h1>`);
    } catch (e) {
      res.writeHead(401, { "content-type": "text/plain" });
      res.end(`not verified: ${e.code ?? e.message}`);
    }
  });
  await new Promise((ok) => app.listen(appPort, "127.0.0.1", ok));
  const browser = await launchChromium();
  try {
    const port = new URL(gh.url).port;
    const r = await admin("/admin/api/apps", "POST", {
      name: "Verifying app", host: `localhost:${port}`, path_prefix: "/verified/", origin: self,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // Straight to the app with a made-up identity: refused by the app itself.
    const direct = await fetch(`${self}/verified/`, { headers: { "x-gatehouse-identity": "e30.e30.sig" } });
    assert.equal(direct.status, 401);

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${appBase}/verified/home`);
    assert.equal(new URL(page.url()).origin, gh.url, "signed out: to Gatehouse's login");
    await page.fill('input[name="username"]', "gwuser");
    await page.fill('input[name="password"]', PASSWORD);
    await Promise.all([page.waitForURL(`${appBase}/verified/home`), page.click('button[type="submit"]')]);
    assert.equal((await page.textContent("#hello")).trim(), "Hello gwuser");
    // The session holds: the next page needs no sign-in.
    await page.goto(`${appBase}/verified/other`);
    assert.equal((await page.textContent("#hello")).trim(), "Hello gwuser");
    await context.close();
  } finally {
    await browser.close();
    await new Promise((ok) => app.close(ok));
  }
});
