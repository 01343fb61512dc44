// Email against a real `wrangler dev`: a password reset through the dev outbox in a real browser,
// a sign-in with an emailed code, an address verified through its link with `email_verified`
// read by openid-client from userinfo before and after, and the HTTPS mail adapter posting to a
// stub API on loopback. Nothing is ever sent anywhere: the outbox is the local database.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import * as oc from "openid-client";
import { startGatehouse, makeSecrets } from "./harness.mjs";
import {
  adminApi, oidcConfig, authRequest, launchChromium, callbackServer, withPage as withPageIn, openLoginPage, postForm, parseForms,
  pkceAuthorizeUrl, send, uniq,
} from "./helpers.mjs";

let gh, admin, browser, cb, cbBase;

before(async () => {
  gh = await startGatehouse({ vars: { GATEHOUSE_EMAIL_OTP: "on" } });
  admin = adminApi(gh);
  ({ server: cb, base: cbBase } = await callbackServer());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (cb ? cb.close(ok) : ok()));
  await gh?.stop();
});

/** The newest outbox mail of `kind` to `to`, waiting for the delivery after the response. */
async function mailTo(to, kind, { after = 0 } = {}) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${gh.url}/dev/outbox?format=json&to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 200);
    const { mails } = await res.json();
    const found = mails.find((m) => m.kind === kind && m.id > after);
    if (found) return found;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`no ${kind} mail to ${to}`);
}

const linkIn = (mail) => mail.text_body.split("\n").map((l) => l.trim()).find((l) => l.startsWith(gh.url));
const codeIn = (mail) => mail.text_body.split("\n").map((l) => l.trim()).find((l) => /^\d{6}$/.test(l));

const withPage = (fn) => withPageIn(browser, fn);

/** Opens a sign-in flow of `clientId` on `server` and asks for a reset for `login` (no browser). */
async function askReset(server, clientId, login) {
  const { jar, url } = await openLoginPage(pkceAuthorizeUrl(server, clientId));
  const resetUrl = new URL(url);
  resetUrl.pathname = "/oauth2/reset";
  const form = parseForms(await (await send(jar, resetUrl)).text()).find((f) => f.action === "/oauth2/reset");
  const fields = Object.fromEntries(form.inputs.filter((i) => i.type === "hidden").map((i) => [i.name, i.value]));
  const res = await postForm(jar, `${server.url}/oauth2/reset`, { ...fields, login });
  return { res, fields };
}


async function submit(page, selector = 'button[type="submit"]') {
  await Promise.all([page.waitForLoadState("load"), page.click(selector)]);
}

async function signIn(page, url, user, password = user.password) {
  await page.goto(url);
  assert.equal(new URL(page.url()).pathname, "/oauth2/login");
  await page.fill('input[name="username"]', user.username);
  await page.fill('input[name="password"]', password);
  await submit(page);
}

async function exchange(config, req, page) {
  const tokens = await oc.authorizationCodeGrant(config, new URL(page.url()), {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
  });
  return tokens;
}

test("the dev outbox page lists mail in local development", async () => {
  const res = await fetch(`${gh.url}/dev/outbox`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /text\/html/);
  assert.match(await res.text(), /Dev outbox/);
});

test("browser: forgot password, the link from the outbox, a new password, signed in to the app", async () => {
  const user = await admin.createUser({ email_verified: true });
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  const config = await oidcConfig(gh, client);
  const newPassword = "a fresh passphrase for the reset";
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid email", redirectUri });
    await page.goto(req.url.href);
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/reset"), page.click("#forgot-password")]);
    await page.fill("#login", user.username);
    await submit(page, "#send-reset-link");
    assert.match(await page.textContent("#reset-notice"), /If an account/);
    const mail = await mailTo(user.email, "password_reset");
    assert.match(mail.subject, /Reset your password/);
    const link = linkIn(mail);
    assert.ok(link.startsWith(`${gh.url}/oauth2/reset/confirm?`), link);
    await page.goto(link);
    assert.equal(new URL(page.url()).pathname, "/oauth2/password");
    await page.fill("#new-password", newPassword);
    await page.fill("#confirm-password", newPassword);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    const tokens = await exchange(config, req, page);
    assert.deepEqual(tokens.claims().amr, ["otp"], "the reset link, not a password");
    // The link is spent.
    await page.goto(link);
    assert.match(await page.textContent("body"), /expired, was used already/);
  });
  const changed = await mailTo(user.email, "password_changed");
  assert.match(changed.text_body, /was changed/);
  // The old password is gone; the new one signs in.
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signIn(page, req.url.href, user);
    assert.match(await page.textContent("#login-error"), /Invalid/);
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', newPassword);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), page.click('button[type="submit"]')]);
  });
});

test("a reset request for an unknown account gets the same page and sends nothing", async () => {
  const client = await admin.createClient();
  const known = await admin.createUser({ email_verified: true });
  const pages = [];
  for (const login of [known.username, uniq("nobody")]) {
    const { res, fields } = await askReset(gh, client.client_id, login);
    const html = (await res.text()).replaceAll(fields.req, "REQ").replaceAll(fields.csrf, "CSRF");
    pages.push([res.status, html]);
  }
  assert.deepEqual(pages[0], pages[1]);
  await mailTo(known.email, "password_reset");
});

test("browser: turn emailed codes on, then sign in with a code from the outbox", async () => {
  const user = await admin.createUser({ email_verified: true });
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  const config = await oidcConfig(gh, client);
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signIn(page, req.url.href, user);
    await page.goto(`${gh.url}/account`);
    assert.match(await page.textContent("#email-otp-state"), /are off/);
    await submit(page, "#email-otp-toggle");
    assert.match(await page.textContent("#account-notice"), /Each sign-in now asks/);
  });
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signIn(page, req.url.href, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/mfa/email");
    assert.match(await page.textContent("#email-address"), /•••@example\.test/);
    const code = codeIn(await mailTo(user.email, "sign_in_code"));
    await page.fill("#code", code === "000000" ? "111111" : "000000");
    await submit(page);
    assert.match(await page.textContent("#mfa-error"), /not valid/);
    await page.fill("#code", code);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    const claims = (await exchange(config, req, page)).claims();
    for (const m of ["pwd", "otp", "mfa"]) assert.ok(claims.amr.includes(m), JSON.stringify(claims.amr));
  });
});

test("browser: verifying an address flips email_verified in userinfo, read by openid-client", async () => {
  const user = await admin.createUser();
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  const config = await oidcConfig(gh, client);
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid email", redirectUri });
    await signIn(page, req.url.href, user);
    await page.waitForURL((u) => u.href.startsWith(redirectUri));
    const tokens = await exchange(config, req, page);
    const sub = tokens.claims().sub;
    const before = await oc.fetchUserInfo(config, tokens.access_token, sub);
    assert.equal(before.email_verified, false);
    await page.goto(`${gh.url}/account`);
    assert.equal(await page.textContent("#email-verified"), "not yet");
    await submit(page, "#send-verification");
    assert.match(await page.textContent("#account-notice"), /verification link/);
    const link = linkIn(await mailTo(user.email, "verify_address"));
    await page.goto(link);
    await submit(page, "#confirm-email");
    assert.match(await page.textContent("#verify-done"), /verified/);
    const after = await oc.fetchUserInfo(config, tokens.access_token, sub);
    assert.equal(after.email_verified, true);
    assert.equal(after.email, user.email);
    await page.goto(`${gh.url}/account`);
    assert.equal(await page.textContent("#email-verified"), "yes");
  });
});

test("the HTTPS mail adapter posts Resend's JSON to the configured API", async () => {
  const received = [];
  const stub = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ path: req.url, auth: req.headers.authorization, type: req.headers["content-type"], body: JSON.parse(body) });
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"id":"stub-1"}');
    });
  });
  await new Promise((ok) => stub.listen(0, "127.0.0.1", ok));
  const secrets = { ...makeSecrets(), GATEHOUSE_MAIL_API_KEY: "re_test_key" };
  const api = await startGatehouse({
    secrets,
    vars: {
      GATEHOUSE_MAILER: "api",
      GATEHOUSE_MAIL_FROM: "Gatehouse <no-reply@id.example.test>",
      GATEHOUSE_MAIL_API_URL: `http://127.0.0.1:${stub.address().port}/emails`,
    },
  });
  try {
    const a = adminApi(api);
    const user = await a.createUser({ email_verified: true });
    const client = await a.createClient();
    const { res } = await askReset(api, client.client_id, user.username);
    assert.equal(res.status, 200);
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(received.length, 1);
    const [got] = received;
    assert.equal(got.path, "/emails");
    assert.equal(got.auth, "Bearer re_test_key");
    assert.equal(got.type, "application/json");
    assert.deepEqual(Object.keys(got.body).sort(), ["from", "html", "subject", "text", "to"]);
    assert.deepEqual(got.body.to, [user.email]);
    assert.equal(got.body.from, "Gatehouse <no-reply@id.example.test>");
    assert.ok(got.body.text.includes(`${api.url}/oauth2/reset/confirm?`));
    assert.ok(!/<img/i.test(got.body.html), "no tracking pixel");
    // Not the dev outbox: that exists only with the outbox mailer.
    assert.equal((await fetch(`${api.url}/dev/outbox`)).status, 404);
  } finally {
    await api.stop();
    await new Promise((ok) => stub.close(ok));
  }
});

test("the send_email binding adapter hands the mail to workerd's binding", async () => {
  const sender = await startGatehouse({
    vars: { GATEHOUSE_MAILER: "send_email", GATEHOUSE_MAIL_FROM: "no-reply@id.example.test" },
    wranglerExtra: '[[send_email]]\nname = "EMAIL"',
  });
  try {
    const a = adminApi(sender);
    const user = await a.createUser({ email_verified: true });
    const client = await a.createClient();
    assert.equal((await askReset(sender, client.client_id, user.username)).res.status, 200);
    // Local workerd logs each message the binding sends, with the file holding its text.
    let logged;
    for (let i = 0; i < 100 && !logged; i++) {
      logged = sender.logs().match(/send_email binding called[\s\S]*?To: (\S+)[\s\S]*?Subject: ([^\n]+)[\s\S]*?Text: (\S+\.txt)/);
      if (!logged) await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.ok(logged, sender.logs().slice(-2000));
    assert.match(logged[1], new RegExp(user.email.replace(".", "\\.")));
    assert.match(logged[2], /Reset your password/);
    assert.ok(readFileSync(logged[3], "utf8").includes(`${sender.url}/oauth2/reset/confirm?`));
  } finally {
    await sender.stop();
  }
});
