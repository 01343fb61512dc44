// Notifications against a real `wrangler dev` and its local Cloudflare Queues: a webhook rule
// made through the admin API, an admin change delivered to a receiver on loopback with a
// Standard Webhooks signature checked here with node's crypto (independently of the Worker's
// code), a receiver that fails once getting the queue's retry under the same webhook-id, and a
// receiver that refuses for good ending in the dead letters the admin API lists; and the
// default rule that mails a user whose account was locked (to the dev outbox, locally).
// GATEHOUSE_NOTIFY_RETRY_DELAYS is 1 second here so the retry comes quickly; nothing waits a
// fixed time: each check polls until what it expects arrives (or a generous deadline passes).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { startGatehouse } from "./harness.mjs";
import { adminApi, pkceAuthorizeUrl, CookieJar, send, findLoginForm } from "./helpers.mjs";

let gh, admin, receiver, receiverUrl;
/** Every request the receiver got: path, headers, raw body. */
const received = [];
/** Paths answered 500 once before they succeed. */
const failOnce = new Set(["/flaky"]);

before(async () => {
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      if (req.url === "/gone") return res.writeHead(410).end("no such hook");
      if (failOnce.has(req.url)) {
        failOnce.delete(req.url);
        return res.writeHead(500).end("try again");
      }
      res.writeHead(204).end();
    });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}`;
  gh = await startGatehouse({ vars: { GATEHOUSE_NOTIFY_RETRY_DELAYS: "1" } });
  admin = adminApi(gh);
});

after(async () => {
  await gh?.stop();
  await new Promise((ok) => (receiver ? receiver.close(ok) : ok()));
});

/** Polls `check` until it returns something truthy; fails with `what` after a minute. */
async function waitFor(what, check) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${gh.logs().slice(-3000)}`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** Standard Webhooks verification, written from the specification, not from Gatehouse's code. */
function verify(secret, headers, body) {
  assert.match(secret, /^whsec_/);
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const content = `${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`;
  const expected = Buffer.from(createHmac("sha256", key).update(content).digest("base64"));
  return headers["webhook-signature"]
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .some((s) => {
      const got = Buffer.from(s.slice(3));
      return got.length === expected.length && timingSafeEqual(got, expected);
    });
}

async function rule(name, kinds, path) {
  const r = await admin.call("POST", "/admin/api/notification-rules", {
    name,
    match: { kinds },
    transport: { type: "webhook", url: `${receiverUrl}${path}` },
  });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

test("an admin change reaches a webhook receiver on loopback, signed per Standard Webhooks", async () => {
  const made = await rule("Users created", ["admin_user_created"], "/ok");
  const secret = made.transport.secret;
  const shown = await admin.call("GET", `/admin/api/notification-rules/${made.id}`);
  assert.equal(shown.json.transport.secret, "set", "the secret is shown once only");

  const user = await admin.createUser();
  const hit = await waitFor("the webhook", () =>
    received.find((r) => r.path === "/ok" && JSON.parse(r.body).data.user_id === user.id),
  );
  assert.ok(verify(secret, hit.headers, hit.body), "signature verifies with node's crypto");
  assert.equal(hit.headers["content-type"], "application/json");
  const age = Math.abs(Date.now() / 1000 - Number(hit.headers["webhook-timestamp"]));
  assert.ok(age < 300, `webhook-timestamp is the current Unix time (off by ${age} s)`);
  const body = JSON.parse(hit.body);
  assert.equal(body.type, "admin_user_created");
  assert.match(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.ok(!verify("whsec_" + Buffer.alloc(32, 1).toString("base64"), hit.headers, hit.body), "another key does not verify");
});

test("a receiver that fails once gets the retry from the queue, with the same webhook-id", async () => {
  const made = await rule("Users deleted", ["admin_user_deleted"], "/flaky");
  const user = await admin.createUser();
  const del = await admin.call("DELETE", `/admin/api/users/${user.id}`);
  assert.equal(del.status, 204);
  const [first, second] = await waitFor("a first attempt and its retry", () => {
    const hits = received.filter((r) => r.path === "/flaky");
    return hits.length >= 2 && hits;
  });
  assert.equal(first.headers["webhook-id"], second.headers["webhook-id"]);
  assert.equal(first.body, second.body, "the same message");
  assert.ok(verify(made.transport.secret, first.headers, first.body));
  assert.ok(verify(made.transport.secret, second.headers, second.body));
  assert.ok(Number(second.headers["webhook-timestamp"]) >= Number(first.headers["webhook-timestamp"]));
  assert.equal(JSON.parse(second.body).data.user_id, user.id);
});

test("a receiver that refuses for good ends in the dead letters the admin API lists", async () => {
  const made = await rule("Unlocks", ["admin_user_unlocked"], "/gone");
  const user = await admin.createUser();
  const unlock = await admin.call("POST", `/admin/api/users/${user.id}/unlock`);
  assert.ok(unlock.status < 300, unlock.text);
  const letter = await waitFor("the dead letter", async () => {
    const r = await admin.call("GET", "/admin/api/notification-rules/dead-letters?limit=10");
    assert.equal(r.status, 200);
    return r.json.dead_letters.find((d) => d.rule_id === made.id);
  });
  assert.equal(letter.event_kind, "admin_user_unlocked");
  assert.match(letter.reason, /410/);
  assert.equal(received.filter((r) => r.path === "/gone").length, 1, "a 410 is not retried");
});

test("the admin API validates rules and lets a dry run test one without sending", async () => {
  const bad = await admin.call("POST", "/admin/api/notification-rules", {
    name: "x",
    transport: { type: "webhook", url: "http://example.com/hook" },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /https/);
  const made = await rule("Dry", ["account_locked"], "/dry");
  const yes = await admin.call("POST", `/admin/api/notification-rules/${made.id}/test`, { event: { kind: "account_locked" } });
  assert.equal(yes.status, 200, yes.text);
  assert.equal(yes.json.matches, true);
  const no = await admin.call("POST", `/admin/api/notification-rules/${made.id}/test`, { event: { kind: "login_failed" } });
  assert.equal(no.json.matches, false);
  assert.equal(received.filter((r) => r.path === "/dry").length, 0);
  assert.equal((await admin.call("DELETE", `/admin/api/notification-rules/${made.id}`)).status, 204);
});

test("by default a locked account is told by mail (the dev outbox in local development)", async () => {
  // Only a verified address is told of its account.
  const user = await admin.createUser({ email_verified: true });
  const client = await admin.createClient();
  const jar = new CookieJar();
  const ip = { "cf-connecting-ip": "203.0.113.40" };
  const r = await send(jar, pkceAuthorizeUrl(gh, client.client_id), { headers: ip });
  const page = await send(jar, new URL(r.headers.get("location"), gh.url), { headers: ip });
  const form = findLoginForm(await page.text());
  for (let i = 0; i < 5; i++) {
    const res = await send(jar, new URL("/oauth2/login", gh.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...ip },
      body: new URLSearchParams({ ...form.fields, username: user.username, password: `wrong ${i}` }).toString(),
    });
    assert.equal(res.status, 401);
  }
  const mail = await waitFor("the lockout mail", async () => {
    const res = await fetch(`${gh.url}/dev/outbox?format=json&to=${encodeURIComponent(user.email)}`);
    assert.equal(res.status, 200);
    return (await res.json()).mails.find((m) => m.kind === "notification");
  });
  assert.match(mail.subject, /locked/);
  assert.match(mail.text_body, /203\.0\.113\.40/);
});
