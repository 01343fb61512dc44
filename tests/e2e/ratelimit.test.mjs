// Per-IP rate limiting against a real `wrangler dev`, with the counters in the SQLite-backed
// Durable Object.
//
// Simulating clients: wrangler dev sets `CF-Connecting-IP: 127.0.0.1` only when the request has
// none, and passes one the client sent through unchanged (the Cloudflare edge would overwrite
// it). So a test plays the edge by sending `CF-Connecting-IP` itself. The trusted-proxy path is
// exercised honestly too: this instance trusts 127.0.0.1/32, so a request *without*
// CF-Connecting-IP arrives from the trusted hop 127.0.0.1 and its X-Forwarded-For is read, while
// a request *with* an outside CF-Connecting-IP is from an untrusted hop and its X-Forwarded-For
// is ignored.
//
// Limits here: 1/s burst 10 and 2/min burst 10. The minute tier refills one request every 30 s,
// so "exactly 10 of a burst" holds however long the burst takes to be served (under 30 s).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startGatehouse } from "./harness.mjs";
import { pkceAuthorizeUrl, adminApi, CookieJar, send, findLoginForm } from "./helpers.mjs";

const LIMITS = {
  GATEHOUSE_RATE_LIMIT_RPS: "1",
  GATEHOUSE_RATE_LIMIT_BURST: "10",
  GATEHOUSE_RATE_LIMIT_RPM: "2",
  GATEHOUSE_RATE_LIMIT_RPM_BURST: "10",
  GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1/32",
};
const ALLOWED = 10;

let gh, admin;
before(async () => {
  gh = await startGatehouse({ vars: LIMITS });
  // Setup calls come from 127.0.0.1 (wrangler's default), a budget no test exhausts.
  admin = adminApi(gh);
});
after(async () => { await gh?.stop(); });

/** A fresh documentation-range address per test, so tests never share a budget. */
let nextIp = 1;
const ip = () => `203.0.113.${nextIp++}`;

const tokenCall = (headers = {}) =>
  fetch(`${gh.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: "nobody", client_secret: "x" }),
  });

/** Sends `n` requests at once; returns the statuses. */
async function burst(n, make) {
  const res = await Promise.all(Array.from({ length: n }, (_, i) => make(i)));
  await Promise.all(res.map((r) => r.arrayBuffer()));
  return res;
}
const through = (res) => res.filter((r) => r.status !== 429).length;

test("a burst from one IP gets exactly the allowed number through and the rest 429", async () => {
  const from = ip();
  const res = await burst(25, () => tokenCall({ "cf-connecting-ip": from }));
  assert.equal(through(res), ALLOWED);
  assert.ok(res.filter((r) => r.status !== 429).every((r) => r.status === 401), "the allowed ones reach the endpoint");
  const r = await tokenCall({ "cf-connecting-ip": from });
  assert.equal(r.status, 429);
  assert.match(r.headers.get("retry-after"), /^\d+$/);
  assert.ok(Number(r.headers.get("retry-after")) >= 1);
  const body = await r.json();
  assert.equal(body.error, "rate_limited", "the token endpoint's own JSON error shape");
});

test("another IP is unaffected by the first one's burst", async () => {
  const a = ip(), b = ip();
  assert.equal(through(await burst(15, () => tokenCall({ "cf-connecting-ip": a }))), ALLOWED);
  assert.equal(through(await burst(15, () => tokenCall({ "cf-connecting-ip": b }))), ALLOWED);
  // IPv6 clients are grouped by /64: a new address in the same /64 is the same client.
  assert.equal(through(await burst(12, () => tokenCall({ "cf-connecting-ip": "2001:db8:5:6::1" }))), ALLOWED);
  assert.equal(through(await burst(3, () => tokenCall({ "cf-connecting-ip": "2001:db8:5:6::beef" }))), 0);
});

test("the login form answers 429 as the login page, with Retry-After", async () => {
  const user = await admin.createUser();
  const client = await admin.createClient();
  const from = ip();
  const jar = new CookieJar();
  const authz = pkceAuthorizeUrl(gh, client.client_id);
  const first = await send(jar, authz, { headers: { "cf-connecting-ip": from } });
  const loginUrl = new URL(first.headers.get("location"), gh.url);
  const page = await send(jar, loginUrl, { headers: { "cf-connecting-ip": from } });
  const form = findLoginForm(await page.text());
  const post = (password) =>
    send(jar, new URL("/oauth2/login", gh.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": from },
      body: new URLSearchParams({ ...form.fields, username: user.username, password }).toString(),
    });
  const statuses = [];
  for (let i = 0; i < ALLOWED; i++) {
    const r = await post(`wrong ${i}`);
    statuses.push(r.status);
    await r.arrayBuffer();
  }
  // Four wrong passwords, then the lockout (5) kicks in: every one of them still answers 401.
  assert.deepEqual(statuses, Array(ALLOWED).fill(401));
  const r = await post(user.password);
  assert.equal(r.status, 429);
  assert.ok(Number(r.headers.get("retry-after")) >= 1);
  assert.match(r.headers.get("content-type"), /^text\/html/);
  const html = await r.text();
  assert.match(html, /Too many sign-in attempts from your network/);
  assert.ok(findLoginForm(html), "the login form is still on the page");
});

test("X-Forwarded-For from an untrusted hop is ignored: spoofing it gets no fresh budget", async () => {
  const from = ip();
  const res = await burst(20, (i) =>
    tokenCall({ "cf-connecting-ip": from, "x-forwarded-for": `198.51.100.${i + 1}` }));
  assert.equal(through(res), ALLOWED);
});

test("behind a trusted proxy, each forwarded client has its own budget", async () => {
  // No CF-Connecting-IP: wrangler dev sets 127.0.0.1, which this instance trusts.
  const a = await burst(14, () => tokenCall({ "x-forwarded-for": "198.51.100.201, 127.0.0.1" }));
  const b = await burst(14, () => tokenCall({ "x-forwarded-for": "198.51.100.202" }));
  assert.equal(through(a), ALLOWED);
  assert.equal(through(b), ALLOWED);
  // The right-most untrusted entry counts; what the client wrote to its left does not.
  const spoof = await burst(5, (i) => tokenCall({ "x-forwarded-for": `10.${i}.0.1, 198.51.100.201` }));
  assert.equal(through(spoof), 0);
});

test("unparsable client IP headers share one strict budget and never fail open (CVE-2024-47070 class)", async () => {
  const garbage = ["garbage", "1.2.3.4.5", "203.0.113.7, 1.1.1.1", "[::1]:443", "unknown", "999.1.1.1"];
  const res = await burst(24, (i) => tokenCall({ "cf-connecting-ip": garbage[i % garbage.length] }));
  assert.equal(through(res), ALLOWED);
  // A garbage X-Forwarded-For behind the trusted hop lands in the same exhausted bucket.
  const r = await tokenCall({ "x-forwarded-for": "not-an-ip" });
  assert.equal(r.status, 429);
});

test("the admin API is limited per IP before the token is compared", async () => {
  const from = ip();
  const call = () => fetch(`${gh.url}/admin/api/users`, {
    headers: { authorization: `Bearer ${randomBytes(16).toString("hex")}`, "cf-connecting-ip": from },
  });
  const res = await burst(14, call);
  assert.equal(res.filter((r) => r.status === 401).length, ALLOWED);
  assert.equal(res.filter((r) => r.status === 429).length, 4);
  // Even the right token waits now: guessing cannot go faster than the limit.
  const r = await fetch(`${gh.url}/admin/api/users`, {
    headers: { authorization: `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}`, "cf-connecting-ip": from },
  });
  assert.equal(r.status, 429);
  assert.equal((await r.json()).error, "rate_limited");
});

test("endpoints that check no secret are not limited", async () => {
  const from = ip();
  const res = await burst(30, () => fetch(`${gh.url}/.well-known/openid-configuration`, { headers: { "cf-connecting-ip": from } }));
  assert.ok(res.every((r) => r.status === 200));
});
