// Account lockout, admin unlock, and the reputation policy's Turnstile step, against a real
// `wrangler dev` with the counters in the SQLite-backed Durable Object. Turnstile's siteverify is
// a stub on 127.0.0.1 started here (GATEHOUSE_TURNSTILE_VERIFY_URL points at it); the widget's
// script is never loaded, the form field it would fill is sent directly.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { startGatehouse, makeSecrets, freePort } from "./harness.mjs";
import { pkceAuthorizeUrl, adminApi, CookieJar, send, findLoginForm } from "./helpers.mjs";

const SITE_KEY = "0x4AAAAAAAe2eSiteKey";
const TURNSTILE_SECRET = "0x4AAAAAAAe2e-turnstile-secret";
const PASSING_TOKEN = "stub-token-that-passes";

/** A siteverify stand-in: accepts PASSING_TOKEN with the right secret, records what it got. */
function startStub(port) {
  const seen = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      seen.push({ path: req.url, type: req.headers["content-type"], form: Object.fromEntries(form) });
      const ok = form.get("secret") === TURNSTILE_SECRET && form.get("response") === PASSING_TOKEN;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(ok
        ? { success: true, action: "login", hostname: "127.0.0.1", "error-codes": [] }
        : { success: false, "error-codes": ["invalid-input-response"] }));
    });
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok({ server, seen })));
}

let plain, guarded, stub;
before(async () => {
  const port = await freePort();
  stub = await startStub(port);
  // One after the other: two wrangler dev processes starting at once can pick the same free
  // port for an internal socket ("Address already in use"), and a failed start must not leave
  // the other running (the file would never exit).
  plain = await startGatehouse();
  guarded = await startGatehouse({
    secrets: { ...makeSecrets(), GATEHOUSE_TURNSTILE_SECRET: TURNSTILE_SECRET },
    vars: {
      GATEHOUSE_TURNSTILE_SITE_KEY: SITE_KEY,
      GATEHOUSE_TURNSTILE_VERIFY_URL: `http://127.0.0.1:${port}/siteverify`,
      GATEHOUSE_REPUTATION_THRESHOLD: "-3",
    },
  });
});
after(async () => {
  await Promise.all([plain?.stop(), guarded?.stop()]);
  stub?.server.close();
});

/** The login page of a fresh authorization, seen from `ip`. */
async function loginPage(gh, ip) {
  const client = await adminApi(gh).createClient();
  const jar = new CookieJar();
  const authz = pkceAuthorizeUrl(gh, client.client_id);
  const r = await send(jar, authz, { headers: { "cf-connecting-ip": ip } });
  const url = new URL(r.headers.get("location"), gh.url);
  const page = await send(jar, url, { headers: { "cf-connecting-ip": ip } });
  const html = await page.text();
  const form = findLoginForm(html);
  const post = async (username, password, extra = {}, from = ip) => {
    const res = await send(jar, new URL("/oauth2/login", gh.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": from },
      body: new URLSearchParams({ ...form.fields, username, password, ...extra }).toString(),
    });
    const csp = res.headers.get("content-security-policy") ?? "";
    const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
    const text = await res.text();
    // The page with its per-response CSP nonce blanked, to compare answers byte for byte.
    return { status: res.status, location: res.headers.get("location"), html: nonce ? text.replaceAll(nonce, "NONCE") : text };
  };
  return { html, post };
}

test("five failures lock the account; the locked answer is the wrong-password answer; an admin unlocks", async () => {
  const admin = adminApi(plain);
  const user = await admin.createUser();
  const { post } = await loginPage(plain, "203.0.113.20");
  const wrong = [];
  for (let i = 0; i < 5; i++) wrong.push(await post(user.username, `wrong ${i}`));
  assert.deepEqual(wrong.map((r) => r.status), [401, 401, 401, 401, 401]);
  const locked = await post(user.username, user.password);
  assert.equal(locked.status, 401, "the right password is refused while locked");
  assert.equal(locked.html, wrong[4].html, "same page, byte for byte: no user enumeration");
  assert.match(locked.html, /Invalid username or password\./);
  // The username is case-insensitive for the lock, and other IPs are locked out as well.
  assert.equal((await post(user.username.toUpperCase(), user.password, {}, "198.51.100.20")).status, 401);

  const r = await admin.call("POST", `/admin/api/users/${user.id}/unlock`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, user.id);
  const ok = await post(user.username, user.password);
  assert.equal(ok.status, 303, "unlocked: the right password gets in");
  assert.match(ok.location, /^\/oauth2\/authorize\/resume/);
  // Unlocking needs the admin token.
  const anon = await admin.call("POST", `/admin/api/users/${user.id}/unlock`, undefined, { auth: null });
  assert.equal(anon.status, 401);
});

test("an unknown username fails exactly like a locked one", async () => {
  const admin = adminApi(plain);
  const user = await admin.createUser();
  const { post } = await loginPage(plain, "203.0.113.21");
  for (let i = 0; i < 5; i++) await post(user.username, "wrong");
  const ghost = `${user.username}x`;
  for (let i = 0; i < 5; i++) await post(ghost, "wrong");
  const a = await post(user.username, user.password);
  const b = await post(ghost, user.password);
  assert.equal(a.status, b.status);
  assert.equal(b.html.replaceAll(ghost, user.username), a.html);
});

test("concurrent attempts cannot slip past the count: the Durable Object serialises them", async () => {
  const admin = adminApi(plain);
  const user = await admin.createUser();
  const { post } = await loginPage(plain, "203.0.113.22");
  const res = await Promise.all(Array.from({ length: 12 }, (_, i) => post(user.username, `wrong ${i}`)));
  assert.ok(res.every((r) => r.status === 401));
  // Had any of the twelve been lost in a read-modify-write race, the count could be under 5.
  assert.equal((await post(user.username, user.password)).status, 401, "locked after the concurrent burst");
});

test("a low IP reputation asks for Turnstile, verified server-side at the configured URL", async () => {
  const from = "203.0.113.30";
  const clean = await loginPage(guarded, from);
  assert.doesNotMatch(clean.html, /cf-turnstile/, "a clean IP sees no CAPTCHA");
  const user = await adminApi(guarded).createUser();
  // A spray: three usernames, one guess each, from one IP (threshold -3).
  for (const u of ["sprayed-1", "sprayed-2", "sprayed-3"]) await clean.post(u, "Winter2026!");

  const { html, post } = await loginPage(guarded, from);
  assert.match(html, /class="cf-turnstile"/);
  assert.ok(html.includes(`data-sitekey="${SITE_KEY}"`));
  assert.ok(html.includes('src="https://challenges.cloudflare.com/turnstile/v0/api.js"'));
  assert.match(html, /<script [^>]*nonce="[^"]+"/, "the widget script carries the page's CSP nonce");

  const before = stub.seen.length;
  const none = await post(user.username, user.password);
  assert.equal(none.status, 400, "no token: the password is not even checked");
  assert.match(none.html, /Please complete the verification/);
  assert.equal(stub.seen.length, before, "nothing to verify without a token");

  const bad = await post(user.username, user.password, { "cf-turnstile-response": "forged" });
  assert.equal(bad.status, 400);
  const call = stub.seen.at(-1);
  assert.equal(call.path, "/siteverify");
  assert.equal(call.type, "application/x-www-form-urlencoded");
  assert.deepEqual(call.form, { secret: TURNSTILE_SECRET, response: "forged", remoteip: from });

  const good = await post(user.username, user.password, { "cf-turnstile-response": PASSING_TOKEN });
  assert.equal(good.status, 303, good.html.slice(0, 300));

  const elsewhere = await loginPage(guarded, "198.51.100.30");
  assert.doesNotMatch(elsewhere.html, /cf-turnstile/, "another IP is not asked");
});

test("a targeted username asks for Turnstile from any IP", async () => {
  const user = await adminApi(guarded).createUser();
  for (const [i, from] of ["192.0.2.41", "192.0.2.42", "192.0.2.43"].entries()) {
    const { post } = await loginPage(guarded, from);
    const r = await post(user.username, "wrong");
    assert.equal(r.status, 401);
    assert.equal(/cf-turnstile/.test(r.html), i === 2, `widget after failure ${i + 1}`);
  }
  const { html, post } = await loginPage(guarded, "198.51.100.44");
  assert.doesNotMatch(html, /cf-turnstile/, "the page cannot know the username before the POST");
  const r = await post(user.username, user.password);
  assert.equal(r.status, 400);
  assert.match(r.html, /cf-turnstile/);
  const ok = await post(user.username, user.password, { "cf-turnstile-response": PASSING_TOKEN });
  assert.equal(ok.status, 303);
});
