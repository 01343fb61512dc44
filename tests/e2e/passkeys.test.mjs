// Passkeys in a real browser: Debian's Chromium (playwright-core) with the DevTools WebAuthn
// virtual authenticator (ctap2, internal transport, resident keys, user verification) against a
// real `wrangler dev`. A passkey is registered from the account page, then signs in without a
// username, and as the second factor after a password; openid-client reads the ID token's `amr`.
// The pages are opened on http://localhost: WebAuthn accepts no IP address as an RP ID, and
// Gatehouse's RP ID is the host the pages are served on (the issuer's, unset here).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oc from "openid-client";
import { startGatehouse } from "./harness.mjs";
import { adminApi, oidcConfig, authRequest, launchChromium, callbackServer } from "./helpers.mjs";

let gh, admin, browser, cb, cbBase, local;

before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
  local = gh.url.replace("127.0.0.1", "localhost");
  ({ server: cb, base: cbBase } = await callbackServer());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (cb ? cb.close(ok) : ok()));
  await gh?.stop();
});

/**
 * A browser context whose page has a virtual platform authenticator (a phone's or laptop's:
 * resident keys, user verification by "biometric", presence simulated). Returns what `fn` does;
 * script errors on Gatehouse's pages fail the test.
 */
async function withAuthenticator(fn) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  try {
    const out = await fn({ page, context, cdp, authenticatorId });
    if (errors.length) throw new Error(`script errors on Gatehouse pages: ${errors.join("; ")}`);
    return out;
  } finally {
    await context.close();
  }
}

/** An authorization request (its pages on `local`, the RP ID's host, like the config's). */
async function localAuthRequest(config, redirectUri) {
  const req = await authRequest(config, { scope: "openid profile", redirectUri });
  return { ...req, href: req.url.href };
}

async function tokensFrom(page, config, req) {
  return oc.authorizationCodeGrant(config, new URL(page.url()), {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
  });
}

async function signInWithPassword(page, user) {
  await page.fill('input[name="username"]', user.username);
  await page.fill('input[name="password"]', user.password);
  await Promise.all([page.waitForLoadState("load"), page.click("#login-form button[type=submit]")]);
}

/** Registers a passkey named `name` from the account page (signing in with the password). */
async function registerFromAccount(page, user, name) {
  await page.goto(`${local}/account`);
  assert.equal(new URL(page.url()).pathname, "/oauth2/login");
  await signInWithPassword(page, user);
  assert.equal(new URL(page.url()).pathname, "/account");
  await page.fill("#passkey-name", name);
  await Promise.all([page.waitForURL(/\/account\/passkeys$/), page.click("#add-passkey")]);
  // The first passkey of a user without recovery codes comes with a set, shown once.
  assert.equal(await page.textContent("h1"), "Passkey added");
  assert.equal((await page.locator("#recovery-codes li").allTextContents()).length, 10);
  await Promise.all([page.waitForURL(/\/account$/), page.click("#continue")]);
  assert.match(await page.textContent("#passkeys"), new RegExp(name));
}

test("browser: register a passkey on the account page, sign in with it without a username, then as the second factor", async () => {
  const user = await admin.createUser();
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  // The relying party knows Gatehouse by the name its pages are on (the authorization
  // response's `iss` and the ID token's are the origin the request came to).
  const config = await oidcConfig({ ...gh, url: local }, client);

  await withAuthenticator(async ({ page, context, cdp, authenticatorId }) => {
    await registerFromAccount(page, user, "Test laptop");
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");
    assert.equal(credentials[0].rpId, "localhost");
    // The user handle is opaque: not the username, not the address.
    const handle = Buffer.from(credentials[0].userHandle, "base64").toString("latin1");
    assert.ok(!handle.includes(user.username));
    const factors = await admin.call("GET", `/admin/api/users/${user.id}/factors`);
    assert.equal(factors.json.passkeys.length, 1);
    assert.equal(factors.json.passkeys[0].name, "Test laptop");
    assert.equal(factors.json.mfa_enrolled, true);

    // Signed out: the login page asks the browser for passkeys as autofill (conditional
    // mediation) as it loads. The virtual authenticator answers such a request at once, as a
    // user picking the passkey from the username field's suggestions would.
    await context.clearCookies();
    const req = await localAuthRequest(config, redirectUri);
    await page.goto(req.href, { waitUntil: "commit" });
    await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 });
    const claims = (await tokensFrom(page, config, req)).claims();
    assert.equal(claims.sub, user.id);
    assert.deepEqual([...claims.amr].sort(), ["hwk", "mfa", "user"], "a device-bound key that verified the user");
    assert.equal(claims.acr, `${local}/acr/mfa`);

    // From here on the browser offers no autofill (as browsers without conditional mediation):
    // the buttons are the way.
    await page.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });

    // Signed out: the button on the login page, no username typed.
    await context.clearCookies();
    const byButton = await localAuthRequest(config, redirectUri);
    await page.goto(byButton.href);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click("#passkey-sign-in"),
    ]);
    assert.deepEqual([...(await tokensFrom(page, config, byButton)).claims().amr].sort(), ["hwk", "mfa", "user"]);

    // Signed out again, the password typed: the passkey is then asked as the second factor.
    await context.clearCookies();
    const req2 = await localAuthRequest(config, redirectUri);
    await page.goto(req2.href);
    await signInWithPassword(page, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/mfa");
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click("#passkey-verify"),
    ]);
    const second = (await tokensFrom(page, config, req2)).claims();
    assert.deepEqual([...second.amr].sort(), ["hwk", "mfa", "pwd", "user"]);
    const [used] = await gh.d1(
      `SELECT COUNT(*) AS n FROM events WHERE kind = 'passkey_used' AND user_id = '${user.id}'`,
    );
    assert.equal(used.n, 3, "each use recorded");

    // Made passkey-only by an administrator: the right password is refused like a wrong one,
    // and the passkey still signs in.
    const patched = await admin.call("PATCH", `/admin/api/users/${user.id}`, { passkey_only: true });
    assert.equal(patched.status, 200);
    await context.clearCookies();
    const req3 = await localAuthRequest(config, redirectUri);
    await page.goto(req3.href);
    await signInWithPassword(page, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    assert.match(await page.textContent("#login-error"), /Invalid username or password/);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click("#passkey-sign-in"),
    ]);
    assert.deepEqual([...(await tokensFrom(page, config, req3)).claims().amr].sort(), ["hwk", "mfa", "user"]);
  });
});

test("browser: a passkey-only user set up by an administrator's link signs in with that passkey", async () => {
  const user = await admin.createUser({ passkey_only: true });
  const link = await admin.call("POST", `/admin/api/users/${user.id}/passkey-setup`);
  assert.equal(link.status, 201, link.text);
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ redirect_uris: [redirectUri] });
  const config = await oidcConfig({ ...gh, url: local }, client);
  await withAuthenticator(async ({ page, cdp, authenticatorId }) => {
    // The link names the issuer the request came to (127.0.0.1); the pages go on localhost.
    await page.goto(link.json.url.replace(gh.url, local));
    assert.equal(await page.textContent("#setup-username"), user.username);
    await page.fill("#passkey-name", "Work laptop");
    await Promise.all([page.waitForURL(/\/account\/passkey-setup$/), page.click("#set-up-passkey")]);
    assert.match(await page.textContent("#notice"), /Your passkey is set up/);
    assert.equal((await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials.length, 1);
    // The link is spent.
    await page.goto(link.json.url.replace(gh.url, local));
    assert.match(await page.textContent("#error-detail"), /Ask your administrator for a new one/);
    const req = await localAuthRequest(config, redirectUri);
    await page.goto(req.href, { waitUntil: "commit" });
    await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 });
    assert.equal((await tokensFrom(page, config, req)).claims().sub, user.id);
  });
});

test("browser: an authenticator without a passkey for this site signs nobody in, and the page says so", async () => {
  await withAuthenticator(async ({ page }) => {
    const client = await admin.createClient({ redirect_uris: [`${cbBase}/callback`] });
    const config = await oidcConfig({ ...gh, url: local }, client);
    const req = await localAuthRequest(config, `${cbBase}/callback`);
    await page.goto(req.href);
    // The authenticator holds no credential for localhost: the browser reports a failure.
    await page.click("#passkey-sign-in");
    await page.waitForFunction(() => document.querySelector("#passkey-error")?.textContent.length > 0, null, {
      timeout: 15_000,
    });
    assert.equal(new URL(page.url()).pathname, "/oauth2/login", "still on the login page");
  });
});

test("browser: where a second factor is required, a passkey is enrolled at sign-in and then asked for", async () => {
  const required = await startGatehouse({ vars: { GATEHOUSE_MFA: "required" } });
  try {
    const requiredAdmin = adminApi(required);
    const requiredLocal = required.url.replace("127.0.0.1", "localhost");
    const user = await requiredAdmin.createUser();
    const redirectUri = `${cbBase}/callback`;
    const client = await requiredAdmin.createClient({ redirect_uris: [redirectUri] });
    const config = await oidcConfig({ ...required, url: requiredLocal }, client);
    await withAuthenticator(async ({ page }) => {
      await page.addInitScript(() => {
        PublicKeyCredential.isConditionalMediationAvailable = async () => false;
      });
      const req = await authRequest(config, { scope: "openid", redirectUri });
      await page.goto(req.url.href);
      await signInWithPassword(page, user);
      assert.equal(new URL(page.url()).pathname, "/oauth2/mfa/enroll");
      await page.fill("#passkey-name", "Laptop");
      await Promise.all([page.waitForURL(/\/oauth2\/mfa\/enroll\/passkey$/), page.click("#enroll-passkey")]);
      assert.equal((await page.locator("#recovery-codes li").allTextContents()).length, 10);
      // Registering proved nothing yet: the new passkey is asked for once.
      await Promise.all([page.waitForURL(/\/oauth2\/mfa\?/), page.click("#continue")]);
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
        page.click("#passkey-verify"),
      ]);
      const claims = (await tokensFrom(page, config, req)).claims();
      assert.deepEqual([...claims.amr].sort(), ["hwk", "mfa", "pwd", "user"]);
    });
  } finally {
    await required.stop();
  }
});
