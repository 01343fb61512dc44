// What the gateway's proxy passes and what it does not, through a real wrangler dev in front of an
// origin on loopback that echoes what it received: the client's own method (WebDAV and the like),
// no client-chosen address or path-override headers, no hop-by-hop headers either way, and
// identity or return URLs outside ASCII percent-encoded rather than sent as raw UTF-8.
// Gatehouse (the issuer) is http://127.0.0.1:PORT; the apps live on localhost:PORT.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { startGatehouse, freePort } from "./harness.mjs";

const PASSWORD = "correct horse battery staple";
let gh, port, appBase, origin, originPort;

/** A raw HTTP/1.1 request to the app host (any method, any header, Connection included). */
function appRequest(path, { method = "GET", headers = {}, body } = {}) {
  return new Promise((ok, fail) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers: { host: `localhost:${port}`, ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }));
    });
    req.on("error", fail);
    req.end(body);
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

/**
 * Signs `username` in through the gateway from `path` on the app host; `editGateway` may change
 * the URL of Gatehouse's gateway step. Returns the app-host jar and the final redirect.
 */
async function signIn(username, path, editGateway = (u) => u) {
  const appJar = new Jar(), idp = new Jar();
  let r = await appJar.get(`${appBase}${path}`);
  assert.equal(r.status, 302);
  r = await idp.get(editGateway(r.headers.get("location")));
  assert.equal(r.status, 303, await r.clone().text());
  r = await idp.get(new URL(r.headers.get("location"), gh.url).href);
  const html = await r.text();
  const field = (n) => html.match(new RegExp(`name="${n}" value="([^"]*)"`))[1];
  r = await idp.get(`${gh.url}/oauth2/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ req: field("req"), csrf: field("csrf"), username, password: PASSWORD }),
  });
  assert.equal(r.status, 303, await r.clone().text());
  r = await idp.get(new URL(r.headers.get("location"), gh.url).href);
  const callback = r.headers.get("location");
  assert.match(callback, /\/\.gatehouse\/callback\?code=/);
  const done = await appJar.get(callback);
  return { jar: appJar, done };
}

before(async () => {
  originPort = await freePort();
  origin = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const headers = { "content-type": "application/json" };
      if (req.url.startsWith("/open/hop")) {
        // What describes only the origin's connection to Gatehouse, or is for the next hop only.
        Object.assign(headers, {
          connection: "x-internal-route",
          "x-internal-route": "backend-7",
          "proxy-status": "origin; error=none",
          "x-kept": "yes",
        });
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }));
    });
  });
  await new Promise((ok) => origin.listen(originPort, "127.0.0.1", ok));
  gh = await startGatehouse({ vars: { GATEHOUSE_ISSUER: "http://127.0.0.1:{port}" } });
  port = new URL(gh.url).port;
  appBase = `http://localhost:${port}`;
  for (const app of [
    { name: "Open", path_prefix: "/open/", require_login: false },
    { name: "Closed", path_prefix: "/closed/" },
  ]) {
    const r = await admin("/admin/api/apps", "POST", { host: `localhost:${port}`, origin: `http://127.0.0.1:${originPort}`, ...app });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  for (const [username, email] of [["plain", "plain@example.com"], ["intl", "josé+1%@例え.jp"]]) {
    const r = await admin("/admin/api/users", "POST", { username, email, password: PASSWORD });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
});

after(async () => {
  await gh?.stop();
  await new Promise((ok) => origin?.close(ok));
});

test("WebDAV and other extension methods reach the origin as sent, with their bodies (they became GET: 502)", async () => {
  const xml = '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>';
  // QUERY: the IETF's safe method with a body. (workerd answers 501 itself to a method its HTTP
  // parser does not know, e.g. BREW, before any Worker runs.)
  for (const method of ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE", "ACL", "QUERY"]) {
    const r = await appRequest("/open/dav/file.txt", {
      method, headers: { "content-type": "application/xml", depth: "1" }, body: xml,
    });
    assert.equal(r.status, 200, `${method}: ${r.text.slice(0, 200)}`);
    const seen = r.json();
    assert.equal(seen.method, method);
    assert.equal(seen.body, xml, `${method} body`);
    assert.equal(seen.headers.depth, "1");
  }
});

test("a PROPFIND without a session gets 401, not a login redirect meant for page loads", async () => {
  const r = await appRequest("/closed/dav/", { method: "PROPFIND", headers: { depth: "0" } });
  assert.equal(r.status, 401);
  assert.equal(r.headers.location, undefined);
});

test("a signed-in PROPFIND reaches the origin with the user's identity", async () => {
  const { jar } = await signIn("plain", "/closed/page");
  const r = await appRequest("/closed/dav/", { method: "PROPFIND", headers: { cookie: jar.header(), depth: "0" }, body: "<propfind/>" });
  assert.equal(r.status, 200, r.text);
  const seen = r.json();
  assert.equal(seen.method, "PROPFIND");
  assert.equal(seen.body, "<propfind/>");
  assert.equal(seen.headers["x-gatehouse-user"], "plain");
});

test("TRACE never reaches the origin (it would echo credentials back to a script)", async () => {
  const r = await appRequest("/open/x", { method: "TRACE", headers: { authorization: "Bearer secret" } });
  assert.equal(r.status, 405, r.text);
  assert.doesNotMatch(r.text, /Bearer secret|"method"/);
});

test("a client cannot tell the origin its IP or another path: only Gatehouse's X-Forwarded-For passes", async () => {
  const spoofed = {
    "x-real-ip": "10.6.6.6", "true-client-ip": "10.6.6.6", "x-client-ip": "10.6.6.6",
    "x-cluster-client-ip": "10.6.6.6", "fastly-client-ip": "10.6.6.6", "x-originating-ip": "10.6.6.6",
    "client-ip": "10.6.6.6", "x-forwarded": "for=10.6.6.6", forwarded: "for=10.6.6.6",
    "x-forwarded-for": "10.6.6.6", "x-forwarded-host": "evil.example", "x-original-url": "/closed/admin",
    "x-rewrite-url": "/closed/admin",
  };
  // The tests play Cloudflare's edge, which sets CF-Connecting-IP.
  const r = await appRequest("/open/ip", { headers: { ...spoofed, "cf-connecting-ip": "203.0.113.7" } });
  assert.equal(r.status, 200);
  const seen = r.json().headers;
  for (const name of Object.keys(spoofed)) {
    if (name.startsWith("x-forwarded-")) continue;
    assert.equal(seen[name], undefined, `${name} reached the origin`);
  }
  assert.equal(seen["cf-connecting-ip"], undefined, "stated once, in X-Forwarded-For");
  assert.equal(seen["x-forwarded-for"], "203.0.113.7");
  assert.equal(seen["x-forwarded-host"], `localhost:${port}`);
  assert.equal(seen["x-forwarded-proto"], "http");
});

test("Proxy-* headers stay with the hop they were meant for", async () => {
  // (The runtime consumes a request's Connection header before the Worker sees it, so the
  // headers it names are stripped natively: crates/core/tests/gateway.rs.)
  const r = await appRequest("/open/conn", {
    headers: { "proxy-authorization": "Basic cDpw", "proxy-trace-id": "abc", "x-kept": "yes" },
  });
  assert.equal(r.status, 200);
  const seen = r.json().headers;
  assert.equal(seen["proxy-authorization"], undefined);
  assert.equal(seen["proxy-trace-id"], undefined);
  assert.equal(seen["x-kept"], "yes");
});

test("an origin's hop-by-hop headers and the ones its Connection header names never reach the client", async () => {
  const r = await appRequest("/open/hop");
  assert.equal(r.status, 200);
  assert.equal(r.headers["x-internal-route"], undefined);
  assert.equal(r.headers["proxy-status"], undefined);
  assert.equal(r.headers["x-kept"], "yes");
});

test("a user's internationalised email reaches the app percent-encoded, not as raw UTF-8 read as Latin-1", async () => {
  const { jar } = await signIn("intl", "/closed/me");
  const r = await jar.get(`${appBase}/closed/me`);
  assert.equal(r.status, 200, await r.clone().text());
  const seen = (await r.json()).headers;
  assert.equal(seen["x-gatehouse-email"], "jos%C3%A9+1%25@%E4%BE%8B%E3%81%88.jp");
  assert.equal(decodeURIComponent(seen["x-gatehouse-email"]), "josé+1%@例え.jp");
  assert.equal(seen["x-gatehouse-user"], "intl");
  const claims = JSON.parse(Buffer.from(seen["x-gatehouse-identity"].split(".")[1], "base64url").toString());
  assert.equal(claims.email, "josé+1%@例え.jp", "the signed identity carries the exact address");
});

test("a return URL outside ASCII comes back as a percent-encoded Location, not raw UTF-8", async () => {
  const plain = encodeURIComponent(`${appBase}/closed/`);
  const { done } = await signIn("plain", "/closed/", (u) => u.replace(plain, encodeURIComponent(`${appBase}/closed/日本?q=é`)));
  assert.equal(done.status, 303, await done.clone().text());
  assert.equal(done.headers.get("location"), `${appBase}/closed/%E6%97%A5%E6%9C%AC?q=%C3%A9`);
});
