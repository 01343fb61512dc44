// The login and consent pages in a real browser (Debian's Chromium via playwright-core).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oc from "openid-client";
import { startGatehouse } from "./harness.mjs";
import { adminApi, oidcConfig, authRequest, tokenRequest, launchChromium, callbackServer } from "./helpers.mjs";

let gh, admin, browser, cb, cbBase;
const hits = [];

before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
  // the relying party's redirect_uri: a tiny loopback server that records what it receives
  ({ server: cb, base: cbBase } = await callbackServer((url) => hits.push(url)));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (cb ? cb.close(ok) : ok()));
  await gh?.stop();
});

async function setup({ firstParty }) {
  const user = await admin.createUser();
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({ first_party: firstParty, redirect_uris: [redirectUri] });
  const config = await oidcConfig(gh, client);
  const req = await authRequest(config, { scope: "openid profile email", redirectUri });
  return { user, client, config, req, redirectUri };
}

async function withPage(fn) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  try {
    return await fn(page, context, errors);
  } finally {
    await context.close();
  }
}

test("browser: log in through the form and land on the redirect_uri with code and iss", async () => {
  const { user, client, config, req, redirectUri } = await setup({ firstParty: true });
  await withPage(async (page, context, errors) => {
    await page.goto(req.url.href);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    const landed = new URL(page.url());
    assert.ok(landed.searchParams.get("code"), "code in the query");
    assert.equal(landed.searchParams.get("iss"), gh.url);
    assert.equal(landed.searchParams.get("state"), req.state);
    assert.ok(hits.some((h) => h.startsWith("/callback?")), "the RP's server saw the callback");

    const cookies = await context.cookies(gh.url);
    const session = cookies.find((c) => c.name === "gh_session");
    assert.ok(session, "SSO session cookie present");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Lax");
    assert.deepEqual(errors, [], "no script errors on Gatehouse pages");

    // the code is good at the token endpoint
    const tokens = await oc.authorizationCodeGrant(config, landed, {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
    });
    assert.equal(tokens.claims().nonce, req.nonce);
    void client;
  });
});

test("browser: wrong password shows the generic error and the form again", async () => {
  const { user, req } = await setup({ firstParty: true });
  await withPage(async (page, context) => {
    await page.goto(req.url.href);
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', "not the right password");
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/oauth2/login"),
      page.click('button[type="submit"]'),
    ]);
    assert.equal(resp.status(), 401);
    await page.waitForLoadState("domcontentloaded");
    assert.ok((await page.textContent("body")).includes("Invalid username or password."));
    assert.equal(await page.locator('input[name="password"]').count(), 1, "form shown again");
    assert.ok(!(await context.cookies(gh.url)).some((c) => c.name === "gh_session"), "no session");

    // and the right password still works from the re-rendered form
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    await Promise.all([
      page.waitForURL((u) => u.href.includes("/callback?"), { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    assert.ok(new URL(page.url()).searchParams.get("code"));
  });
});

test("browser: third-party client asks for consent; allow lands on the redirect_uri", async () => {
  const { user, client, req, redirectUri } = await setup({ firstParty: false });
  await withPage(async (page) => {
    await page.goto(req.url.href);
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/oauth2/consent", { timeout: 15_000 }),
      page.click('button[type="submit"]'),
    ]);
    const body = await page.textContent("body");
    assert.ok(body.includes(client.client_name), "consent page names the client");
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 }),
      page.click('button[name="decision"][value="allow"]'),
    ]);
    const landed = new URL(page.url());
    assert.ok(landed.searchParams.get("code"));
    assert.equal(landed.searchParams.get("iss"), gh.url);
    assert.equal(landed.searchParams.get("state"), req.state);
    const t = await tokenRequest(gh, {
      grant_type: "authorization_code", code: landed.searchParams.get("code"),
      redirect_uri: redirectUri, code_verifier: req.verifier,
    }, { clientId: client.client_id, clientSecret: client.client_secret });
    assert.equal(t.status, 200, t.text);
  });
});

test("browser: the account page edits the profile, and openid-client then reads it from the ID token and userinfo", async () => {
  const user = await admin.createUser();
  const redirectUri = `${cbBase}/callback`;
  const client = await admin.createClient({
    first_party: true, redirect_uris: [redirectUri], scope: "openid profile email address phone",
  });
  const config = await oidcConfig(gh, client);
  await withPage(async (page, _context, errors) => {
    await page.goto(`${gh.url}/account`);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    await Promise.all([page.waitForURL(`${gh.url}/account`), page.click('button[type="submit"]')]);

    // Every field is reachable by its label.
    await page.getByLabel("Given name").fill("Alice");
    await page.getByLabel("Phone number").fill("+441865270000");
    await page.getByLabel("City").fill("Oxford");
    await page.getByLabel("Country").fill("GB");
    await page.getByLabel("Language").fill("en-GB");
    await Promise.all([page.waitForURL(/\/account\?done=profile$/), page.click("#save-profile")]);
    assert.equal((await page.textContent("#account-notice")).trim(), "Your profile was saved.");
    assert.equal(await page.getByLabel("Given name").inputValue(), "Alice");

    // A wrong value says which field, and keeps what was saved.
    await page.getByLabel("Birth date").fill("yesterday");
    await page.click("#save-profile");
    await page.waitForSelector("#account-error:not(:empty)");
    assert.match(await page.textContent("#account-error"), /Birth date must be YYYY-MM-DD/);
    assert.equal(await page.getByLabel("Birth date").inputValue(), "");
    assert.deepEqual(errors, [], "no script errors");

    // The same browser signs in to the client (SSO); the tokens carry the new claims.
    const req = await authRequest(config, { scope: "openid profile address phone", redirectUri });
    await page.goto(req.url.href);
    await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000 });
    const tokens = await oc.authorizationCodeGrant(config, new URL(page.url()), {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
    });
    const claims = tokens.claims();
    assert.equal(claims.given_name, "Alice");
    assert.deepEqual(claims.address, { locality: "Oxford", country: "GB" });
    const info = await oc.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.phone_number, "+441865270000");
    assert.equal(info.phone_number_verified, false);
    assert.equal(info.locale, "en-GB");
    assert.equal(info.email, undefined, "no email scope asked");
  });
});

test("the demo: seed-demo.mjs and demo-rp.mjs give a page to sign in, see the claims and userinfo, and sign out of the SSO session", async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const { freePort } = await import("./harness.mjs");
  const { startDemoRp } = await import("../../scripts/demo-rp.mjs");
  const port = await freePort();
  const env = { ...process.env, GATEHOUSE_ADMIN_TOKEN: gh.secrets.GATEHOUSE_ADMIN_TOKEN };
  // Twice: the second run finds the user and the client and changes nothing that matters.
  for (let i = 0; i < 2; i++) {
    await promisify(execFile)(process.execPath, ["scripts/seed-demo.mjs", gh.url, String(port)], { env });
  }
  const rp = await startDemoRp({ issuer: gh.url, port });
  try {
    await withPage(async (page, _context, errors) => {
      await page.goto(rp.url);
      await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/login"), page.click("#sign-in")]);
      await page.fill('input[name="username"]', "demo");
      await page.fill('input[name="password"]', "demo-password-change-me");
      await Promise.all([page.waitForURL(rp.url), page.click('button[type="submit"]')]);
      const claims = JSON.parse(await page.textContent("#id-token-claims"));
      assert.equal(claims.iss, gh.url);
      assert.equal(claims.preferred_username, "demo");
      assert.equal(claims.given_name, "Demo");
      const info = JSON.parse(await page.textContent("#userinfo"));
      assert.equal(info.email, "demo@example.test");
      assert.equal(info.sub, claims.sub);

      await Promise.all([page.waitForURL(rp.url), page.click("#sign-out")]);
      assert.ok(await page.isVisible("#signed-out"));
      // The SSO session ended too: signing in again asks for the password.
      await Promise.all([page.waitForURL((u) => u.pathname === "/oauth2/login"), page.click("#sign-in")]);
      assert.deepEqual(errors, [], "no script errors");
    });
  } finally {
    await rp.close();
  }
});
