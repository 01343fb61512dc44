// Expression policies and bindings against a real `wrangler dev`: a client only a group may use,
// driven by openid-client (the refusal is its own `access_denied`); a CEL policy on the account
// flow judged on the request's location in a real browser (the location injected through
// Miniflare's `MF-CF-Blob` header, as in geoip.test.mjs); and the admin API's validation and
// dry run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGatehouse } from "./harness.mjs";
import { adminApi, codeFlow, launchChromium, oauthErrorOf, oidcConfig, uniq } from "./helpers.mjs";

let gh, admin, browser;

before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await gh?.stop();
});

const must = (r, status) => {
  assert.equal(r.status, status, r.text.slice(0, 500));
  return r.json;
};

test("only the bound group may use a client: others get access_denied through openid-client", async () => {
  const staff = await admin.createUser({ groups: ["staff"] });
  const other = await admin.createUser({ groups: ["contractors"] });
  const client = await admin.createClient();
  const binding = must(
    await admin.call("POST", "/admin/api/policy-bindings", { target: "client", target_id: client.client_id, group: "staff" }),
    201,
  );
  const config = await oidcConfig(gh, client);
  const { claims } = await codeFlow(config, staff);
  assert.equal(claims.sub, staff.id);
  assert.equal(await oauthErrorOf(codeFlow(config, other)), "access_denied");
  // Unbound, the other user signs in again.
  must(await admin.call("DELETE", `/admin/api/policy-bindings/${binding.id}`), 204);
  const again = await codeFlow(config, other);
  assert.equal(again.claims.sub, other.id);
});

const cf = (country) => JSON.stringify({ country, asn: 3320, tlsVersion: "TLSv1.3" });

async function signInToAccountFrom(user, country) {
  const context = await browser.newContext({ extraHTTPHeaders: { "MF-CF-Blob": cf(country) } });
  try {
    const page = await context.newPage();
    await page.goto(`${gh.url}/account`);
    assert.equal(new URL(page.url()).pathname, "/oauth2/login");
    await page.fill('input[name="username"]', user.username);
    await page.fill('input[name="password"]', user.password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    await page.waitForLoadState("load");
    return { path: new URL(page.url()).pathname, text: await page.textContent("body") };
  } finally {
    await context.close();
  }
}

test("a CEL policy bound to the account flow admits sign-ins from Germany only", async () => {
  const user = await admin.createUser();
  const policy = must(
    await admin.call("POST", "/admin/api/policies", { name: uniq("from-de"), expression: "request.country == 'DE'" }),
    201,
  );
  const binding = must(
    await admin.call("POST", "/admin/api/policy-bindings", { target: "flow", target_id: "account", policy: policy.id }),
    201,
  );
  try {
    const refused = await signInToAccountFrom(user, "FR");
    assert.match(refused.text, /A policy does not allow this sign-in/);
    assert.equal((await signInToAccountFrom(user, "DE")).path, "/account");
  } finally {
    must(await admin.call("DELETE", `/admin/api/policy-bindings/${binding.id}`), 204);
  }
});

test("expressions are validated when saved, and dry runs answer for a user and a request", async () => {
  const bad = await admin.call("POST", "/admin/api/policies", { name: uniq("bad"), expression: "secret == 1" });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error_description, /unknown name `secret`/);
  const user = await admin.createUser({ groups: ["eng"] });
  const policy = must(
    await admin.call("POST", "/admin/api/policies", {
      name: uniq("eng-in-de"),
      expression: "'eng' in user.groups && request.country == 'DE'",
    }),
    201,
  );
  const run = async (country) =>
    must(await admin.call("POST", `/admin/api/policies/${policy.id}/test`, { user: user.username, request: { country } }), 200);
  assert.deepEqual(await run("DE"), { result: true });
  assert.deepEqual(await run("FR"), { result: false });
  must(await admin.call("DELETE", `/admin/api/policies/${policy.id}`), 204);
});
