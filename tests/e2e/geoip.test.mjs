// The GeoIP policy against a real `wrangler dev`, in a real browser. The location comes from
// `request.cf`, which only Cloudflare's edge fills in; the test injects one with Miniflare's
// `MF-CF-Blob` request header, which wrangler dev (Miniflare) turns into the request's `cf`
// object. That path exists only in the local runtime: on Cloudflare the header is an ordinary
// header and `cf` is the edge's own, so nothing in Gatehouse reads or trusts it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGatehouse } from "./harness.mjs";
import { adminApi, launchChromium } from "./helpers.mjs";

let gh, admin, browser;

before(async () => {
  gh = await startGatehouse({ vars: { GATEHOUSE_GEOIP_COUNTRIES_DENY: "RU", GATEHOUSE_GEOIP_IMPOSSIBLE_TRAVEL: "on" } });
  admin = adminApi(gh);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await gh?.stop();
});

const cf = (country, asn, latitude, longitude) =>
  JSON.stringify({ country, asn, latitude: String(latitude), longitude: String(longitude), tlsVersion: "TLSv1.3" });

/** Signs `user` in to the account page from the location `blob`; the page's path and text. */
async function signInFrom(user, blob) {
  const context = await browser.newContext({ extraHTTPHeaders: { "MF-CF-Blob": blob } });
  try {
    const page = await context.newPage();
    await page.goto(`${gh.url}/account`);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    const [response] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    await page.waitForLoadState("load");
    return { path: new URL(page.url()).pathname, status: response?.status(), text: await page.textContent("body") };
  } finally {
    await context.close();
  }
}

test("a denied country is refused after the password; an allowed one signs in", async () => {
  const user = await admin.createUser();
  const denied = await signInFrom(user, cf("RU", 12389, 55.75, 37.61));
  assert.match(denied.text, /not allowed from your current location/);
  const allowed = await signInFrom(user, cf("DE", 3320, 52.52, 13.405));
  assert.equal(allowed.path, "/account");
});

test("impossible travel: a sign-in from New York minutes after one from Berlin is refused", async () => {
  const user = await admin.createUser();
  assert.equal((await signInFrom(user, cf("DE", 3320, 52.52, 13.405))).path, "/account");
  const travelled = await signInFrom(user, cf("US", 7922, 40.7128, -74.006));
  assert.match(travelled.text, /not allowed from your current location/);
  // Back in Berlin: fine.
  assert.equal((await signInFrom(user, cf("DE", 3320, 52.52, 13.405))).path, "/account");
});
