// The Worker's edge through a real wrangler dev: request bodies are capped before anything reads
// them (second review, finding 1), /healthz answers from a per-isolate memory, and with an https
// issuer plain http is redirected or refused. The rules themselves are unit-tested in
// crates/core (limits::body_cap, edge::check_transport, health::handle_cached).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { startGatehouse } from "./harness.mjs";
import { adminApi, uniq } from "./helpers.mjs";

const MB = 1024 * 1024;
let gh, hosted;

before(async () => {
  gh = await startGatehouse();
  // A deployment's settings on plain http: /healthz is not Gatehouse's on 127.0.0.1 there.
  hosted = await startGatehouse({ vars: { GATEHOUSE_ISSUER: "https://id.example.com" }, readyPath: "/.gatehouse/callback" });
});
after(async () => {
  await gh?.stop();
  await hosted?.stop();
});

/**
 * Sends a body in 64 KiB chunks, one every few milliseconds, until the server answers (or
 * `total` bytes are sent). With `contentLength` the request declares it; without, it is chunked.
 * With `holdBody` (milliseconds) only the headers go first, and the body starts after that long
 * without an answer: an answer given on the headers alone then arrives with nothing sent, and no
 * unread upload is left in flight for either hop to reset.
 * Resolves to the answer and how many bytes had been sent when it came.
 */
function trickle(url, path, { method = "POST", headers = {}, contentLength, total = 90 * MB, host, holdBody = 0 } = {}) {
  const { hostname, port } = new URL(url);
  const h = { ...headers };
  if (contentLength !== undefined) h["content-length"] = String(contentLength);
  if (host) h.host = host;
  return new Promise((ok, fail) => {
    let sent = 0;
    let answered = false;
    const started = Date.now();
    const req = request({ host: hostname, port, path, method, headers: h }, (res) => {
      answered = true;
      const sentAtAnswer = sent;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        req.destroy();
        // The same cut-off seen one hop further in: wrangler dev's entry worker forwards the
        // upload to Gatehouse, and when Gatehouse answers and stops reading, that inner hop can
        // fail first and the entry worker answers 500 with workerd's "Network connection lost".
        // Only that exact text counts as a reset; any other 500 (a panic, say) stays a 500.
        const innerHopCut = res.statusCode === 500 && /^Error: Network connection lost\./.test(text);
        const status = innerHopCut ? "reset" : res.statusCode;
        ok({ status, headers: res.headers, text, sentAtAnswer, ms: Date.now() - started });
      });
    });
    // Once answered, the server may close the connection under the rest of the upload. It may
    // also reset it before the answer reaches us (TCP discards what was received when a reset
    // follows unread data): that still shows the upload was cut off, so it is reported as
    // status "reset" with how much had been sent, and the tests accept it where they accept 413.
    req.on("error", (e) => {
      if (answered) return;
      if (e.code === "ECONNRESET" || e.code === "EPIPE") {
        answered = true;
        ok({ status: "reset", headers: {}, text: "", sentAtAnswer: sent, ms: Date.now() - started });
      } else {
        fail(e);
      }
    });
    const chunk = Buffer.alloc(64 * 1024, "a");
    const pump = () => {
      if (answered || req.destroyed) return;
      if (sent >= total) { req.end(); return; }
      sent += chunk.length;
      req.write(chunk);
      setTimeout(pump, 5);
    };
    if (holdBody > 0) {
      req.flushHeaders();
      setTimeout(pump, holdBody);
    } else {
      pump();
    }
  });
}

test("a 90 MB POST to the token endpoint is refused with 413 on its Content-Length, before it is sent", async () => {
  // Anonymous: the rate limit and the client check never see it, and nothing is buffered.
  const r = await trickle(gh.url, "/oauth2/token", {
    contentLength: 90 * MB,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    holdBody: 3000,
  });
  assert.equal(r.status, 413, r.text);
  assert.equal(JSON.parse(r.text).error, "invalid_request");
  assert.match(r.headers["content-security-policy"], /default-src 'none'/, "the usual security headers");
  assert.equal(r.sentAtAnswer, 0, `answered after ${r.sentAtAnswer} bytes: the body was awaited`);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
});

test("a 90 MB POST to the admin API is refused with 413 before the admin token is looked at", async () => {
  for (const auth of [undefined, "Bearer wrong", `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}`]) {
    const headers = { "content-type": "application/json" };
    if (auth) headers.authorization = auth;
    // The body is held back: the answer must come on the headers alone. (Sent at once, the
    // upload still in flight when Gatehouse answers could be reset by wrangler dev's inner hop
    // before the 413 got out; see `trickle`.)
    const r = await trickle(gh.url, "/admin/api/users", { contentLength: 90 * MB, headers, holdBody: 3000 });
    assert.equal(r.status, 413, `${auth}: ${r.text}`);
    assert.equal(JSON.parse(r.text).error, "invalid_request");
    assert.equal(r.sentAtAnswer, 0, `answered after ${r.sentAtAnswer} bytes: the body was awaited`);
  }
});

test("a chunked body without Content-Length is cut off at the cap, not read to its end", async () => {
  // An endless upload: the answer must come once the cap is passed.
  // (A reset instead of the 413 still shows the upload was cut off: see `trickle`.)
  const token = await trickle(gh.url, "/oauth2/token", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.ok([413, "reset"].includes(token.status), `${token.status} ${token.text}`);
  if (token.status === 413) assert.equal(JSON.parse(token.text).error, "invalid_request");
  assert.ok(token.sentAtAnswer < 8 * MB, `answered after ${token.sentAtAnswer} bytes`);

  const admin = await trickle(gh.url, "/admin/api/users", {
    headers: { "content-type": "application/json", authorization: `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}` },
  });
  assert.ok([413, "reset"].includes(admin.status), `${admin.status} ${admin.text}`);
  assert.ok(admin.sentAtAnswer < 16 * MB, `answered after ${admin.sentAtAnswer} bytes`);

  // A page's form gets a page.
  const login = await trickle(gh.url, "/oauth2/login", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.ok([413, "reset"].includes(login.status), `${login.status}`);
  if (login.status === 413) {
    assert.match(login.headers["content-type"], /^text\/html/);
    assert.match(login.headers["content-security-policy"], /frame-ancestors 'none'/);
  }
});

test("a CSP report is read up to its 4096-byte bound and no further", async () => {
  const big = await trickle(gh.url, "/.gatehouse/csp-report", {
    headers: { "content-type": "application/csp-report" },
    total: 256 * 1024,
  });
  assert.equal(big.status, 413, big.text);
  assert.equal(JSON.parse(big.text).error, "invalid_request");
  // One within the bound is read and judged by the endpoint (no app on 127.0.0.1: 404).
  const small = await fetch(`${gh.url}/.gatehouse/csp-report`, {
    method: "POST",
    headers: { "content-type": "application/csp-report" },
    body: JSON.stringify({ "csp-report": { "blocked-uri": "inline", pad: "x".repeat(3000) } }),
  });
  assert.equal(small.status, 404);
  assert.equal((await small.json()).error, "not_found");
});

test("bodies within their caps still work, chunked or not", async () => {
  // A form under 64 KiB reaches the token endpoint (which then judges the client).
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: "nobody", client_secret: "x", pad: "a".repeat(60 * 1024) });
  const token = await fetch(`${gh.url}/oauth2/token`, { method: "POST", body: form });
  assert.equal(token.status, 401);
  assert.equal((await token.json()).error, "invalid_client");
  // The same, chunked (a stream body has no Content-Length).
  const chunked = await fetch(`${gh.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new Blob([form.toString()]).stream(),
    duplex: "half",
  });
  assert.equal(chunked.status, 401);
  // An admin JSON body of most of a megabyte is read whole and judged by the API.
  const api = adminApi(gh);
  const username = uniq("edge");
  const created = await api.call("POST", "/admin/api/users", {
    username, email: `${username}@example.test`, password: "correct horse battery staple 1", name: "Edge",
  });
  assert.equal(created.status, 201, created.text);
  const padded = await api.call("PATCH", `/admin/api/users/${created.json.id}`, { name: "Edge", pad: "x".repeat(900 * 1024) });
  assert.notEqual(padded.status, 413, padded.text);
});

test("/healthz checks D1 and the Durable Object at most once per 5 s per isolate", async () => {
  // The harness polled /healthz at start: wait for a fresh round first.
  let first;
  for (let i = 0; i < 40; i++) {
    first = await fetch(`${gh.url}/healthz`);
    const body = await first.json();
    if (!body.cached) { first = body; break; }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  assert.equal(first.cached, false, "a fresh round within 8 s");
  assert.equal(first.status, "ok");
  const again = await fetch(`${gh.url}/healthz`);
  assert.equal(again.status, 200);
  const body = await again.json();
  assert.equal(body.cached, true, "the second call within the window is answered from memory");
  assert.deepEqual(body.checks, { d1: "ok", durable_object: "ok" });
  assert.match(again.headers.get("age"), /^[0-4]$/);
  assert.match(again.headers.get("cache-control"), /no-store/);
});

/** A plain-http request to `gh` as if it arrived for `host`. */
function hostRequest(g, host, path, { method = "GET", headers = {}, body } = {}) {
  const port = new URL(g.url).port;
  return new Promise((ok, fail) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers: { host, ...headers } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", fail);
    req.end(body);
  });
}

test("with an https issuer, a plain-http GET is redirected to the same URL on https", async () => {
  // Host with the http port 8080: the answer drops it. (wrangler dev's proxy rewrites URLs on
  // the request's own host in response headers to the origin the request came on, which would
  // hide the scheme; a different port keeps the Worker's Location as it is.)
  const r = await hostRequest(hosted, "id.example.com:8080", "/.well-known/openid-configuration?x=1");
  assert.equal(r.status, 308);
  assert.equal(r.headers.location, "https://id.example.com/.well-known/openid-configuration?x=1");
  // An app's host behind the gateway: the same rule, on its own host.
  const app = await hostRequest(hosted, "app.example.com:8080", "/console/?a=b");
  assert.equal(app.status, 308);
  assert.equal(app.headers.location, "https://app.example.com/console/?a=b");
  // On port 80 too (the Location's scheme is hidden by wrangler dev there, see above).
  for (const method of ["GET", "HEAD"]) {
    const plain = await hostRequest(hosted, "id.example.com", "/healthz?x=1", { method });
    assert.equal(plain.status, 308, method);
    assert.match(plain.headers.location, /^https?:\/\/id\.example\.com\/healthz\?x=1$/);
  }
});

test("with an https issuer, a plain-http POST is refused, not redirected to be sent again", async () => {
  const token = await hostRequest(hosted, "id.example.com", "/oauth2/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials&client_id=a&client_secret=b",
  });
  assert.equal(token.status, 403);
  assert.equal(token.headers.location, undefined);
  assert.equal(JSON.parse(token.text).error, "invalid_request");
  const login = await hostRequest(hosted, "id.example.com", "/oauth2/login", { method: "POST", body: "username=a&password=b" });
  assert.equal(login.status, 403);
  assert.match(login.headers["content-type"], /^text\/html/);
  const app = await hostRequest(hosted, "app.example.com", "/form", { method: "POST", body: "a=b" });
  assert.equal(app.status, 403);
  // Local development on loopback keeps working over http, whatever the issuer: the POST
  // reaches the endpoint (which finds no app on 127.0.0.1).
  const local = await fetch(`${hosted.url}/.gatehouse/csp-report`, { method: "POST", body: "{}" });
  assert.equal(local.status, 404);
  assert.equal((await local.json()).error, "not_found");
});

test("a connection older than GATEHOUSE_MIN_TLS (default 1.2) is refused", async () => {
  // wrangler dev takes the request's `cf` object from its MF-CF-Blob header; on Cloudflare it
  // describes the client's real TLS connection.
  const cf = (tlsVersion) => ({ "mf-cf-blob": JSON.stringify({ tlsVersion }) });
  for (const old of ["TLSv1", "TLSv1.1"]) {
    const page = await fetch(`${gh.url}/.well-known/openid-configuration`, { headers: cf(old) });
    assert.equal(page.status, 403, old);
    const token = await fetch(`${gh.url}/oauth2/token`, { method: "POST", headers: cf(old), body: "a=b" });
    assert.equal(token.status, 403, old);
    assert.match((await token.json()).error_description, /TLS 1\.2 or newer/);
  }
  for (const ok of ["TLSv1.2", "TLSv1.3"]) {
    const r = await fetch(`${gh.url}/.well-known/openid-configuration`, { headers: cf(ok) });
    assert.equal(r.status, 200, ok);
  }
});
