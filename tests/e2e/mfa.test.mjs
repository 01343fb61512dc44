// Two-step verification in a real browser (Debian's Chromium via playwright-core) against a
// real `wrangler dev` with GATEHOUSE_MFA=required: enrollment at sign-in (the secret read from
// the page, codes computed here), a code that works once, a recovery code, the account page's
// password change (a flow: password, second factor, new password), and openid-client reading `amr`/`acr` from the ID token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import * as oc from "openid-client";
import { startGatehouse } from "./harness.mjs";
import { adminApi, oidcConfig, authRequest, launchChromium, callbackServer, withPage as withPageIn } from "./helpers.mjs";

let gh, admin, browser, cb, cbBase;

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const ch of text.replace(/\s+/g, "").toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) at `unixSeconds`: computed here, independently. */
function totp(key, unixSeconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

test("totp: the RFC 6238 test vector (SHA-1) checks this file's own generator", () => {
  const key = Buffer.from("12345678901234567890");
  assert.equal(totp(key, 59), "287082");
  assert.equal(totp(key, 1111111109), "081804");
});

before(async () => {
  gh = await startGatehouse({ vars: { GATEHOUSE_MFA: "required" } });
  admin = adminApi(gh);
  ({ server: cb, base: cbBase } = await callbackServer());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (cb ? cb.close(ok) : ok()));
  await gh?.stop();
});

const withPage = (fn) => withPageIn(browser, fn);

async function signInWithPassword(page, url, user, password = user.password) {
  await page.goto(url);
  assert.equal(new URL(page.url()).pathname, "/oauth2/login");
  await page.fill('input[name="username"]', user.username);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
}

test("browser: enroll TOTP at sign-in, sign in with a code once, then with a recovery code; change the password", async () => {
  const user = await admin.createUser();
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  const config = await oidcConfig(gh, client);
  let key, recoveryCodes, usedCode;

  // 1. GATEHOUSE_MFA=required: the password leads to enrollment, not to a session.
  await withPage(async (page, context) => {
    const req = await authRequest(config, { scope: "openid profile", redirectUri });
    await signInWithPassword(page, req.url.href, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/mfa/enroll");
    assert.ok(!(await context.cookies(gh.url)).some((c) => c.name === "gh_session"), "no session yet");
    assert.ok(await page.locator("#totp-qr").isVisible(), "the QR code is shown");
    assert.match(await page.getAttribute("#totp-qr", "src"), /^data:image\/svg\+xml;base64,/);
    key = base32(await page.textContent("#totp-secret"));
    assert.equal(key.length, 20, "a 160-bit secret");
    assert.match(await page.textContent("#totp-uri"), /^otpauth:\/\/totp\/127\.0\.0\.1/);
    // A wrong code first: the form comes back with an error.
    await page.fill('input[name="code"]', "000000");
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#mfa-error")).includes("not valid"));
    usedCode = totp(key);
    await page.fill('input[name="name"]', "Test phone");
    await page.fill('input[name="code"]', usedCode);
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    recoveryCodes = await page.locator("#recovery-codes li").allTextContents();
    assert.equal(recoveryCodes.length, 10, "ten recovery codes shown once");
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click("#continue"),
    ]);
    const tokens = await oc.authorizationCodeGrant(config, new URL(page.url()), {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
    });
    const claims = tokens.claims();
    assert.ok(claims.amr.includes("otp") && claims.amr.includes("pwd") && claims.amr.includes("mfa"), JSON.stringify(claims.amr));
    assert.equal(claims.acr, `${gh.url}/acr/mfa`);
  });

  // 2. Signed out (a fresh browser): password, then a code. The enrollment's code again is a
  // replay; the next step's code (within the ±1 step window) is accepted.
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signInWithPassword(page, req.url.href, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/mfa");
    await page.fill('input[name="code"]', usedCode);
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/oauth2/mfa"),
      page.click('button[type="submit"]'),
    ]);
    assert.equal(refused.status(), 401, "a code is accepted once");
    await page.waitForLoadState("load");
    assert.ok((await page.textContent("#mfa-error")).includes("not valid"));
    await page.fill('input[name="code"]', totp(key, Date.now() / 1000 + 30));
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    const tokens = await oc.authorizationCodeGrant(config, new URL(page.url()), {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
    });
    assert.ok(tokens.claims().amr.includes("otp"));
  });

  // 3. A recovery code instead of the app; the user is told how many are left. Then the account
  // page: the password changes after signing in again.
  const newPassword = "an entirely new passphrase 2";
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signInWithPassword(page, req.url.href, user);
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/mfa/recovery"), page.click("#use-recovery-code")]);
    await page.fill('input[name="code"]', recoveryCodes[0].toLowerCase());
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#notice")).includes("9 recovery codes left"));
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click("#continue"),
    ]);

    await page.goto(`${gh.url}/account`);
    assert.equal(await page.textContent("#profile-username"), user.username);
    assert.ok((await page.textContent("#totp-devices")).includes("Test phone"));
    assert.ok((await page.textContent("#recovery-remaining")).includes("9"));
    // Changing the password is a sign-in flow: the current password, the second factor (a
    // recovery code here: the app's next codes were used above), then the new password.
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/login"), page.click("#change-password")]);
    assert.equal(await page.inputValue('input[name="username"]'), user.username);
    await page.fill('input[name="password"]', "not my password");
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#login-error")).includes("Invalid"));
    await page.fill('input[name="password"]', user.password);
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/mfa"), page.click('button[type="submit"]')]);
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/mfa/recovery"), page.click("#use-recovery-code")]);
    await page.fill('input[name="code"]', recoveryCodes[1]);
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#notice")).includes("8 recovery codes left"));
    await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/password"), page.click("#continue")]);
    await page.fill("#new-password", newPassword);
    await page.fill("#confirm-password", "something else entirely");
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#new-password-error")).includes("do not match"));
    await page.fill("#new-password", newPassword);
    await page.fill("#confirm-password", newPassword);
    await Promise.all([page.waitForURL((u) => u.pathname === "/account"), page.click('button[type="submit"]')]);
    assert.ok((await page.textContent("#account-notice")).includes("Your password was changed"));
  });

  // 4. The old password no longer signs in; the new one does (and still asks for a code).
  await withPage(async (page) => {
    const req = await authRequest(config, { scope: "openid", redirectUri });
    await signInWithPassword(page, req.url.href, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login", "the old password is refused");
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', newPassword);
    await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, "/oauth2/mfa");
  });

  const events = await admin.call("GET", `/admin/api/users/${user.id}/factors`);
  assert.equal(events.json.mfa_enrolled, true);
  assert.equal(events.json.recovery_codes.remaining, 8);
});
