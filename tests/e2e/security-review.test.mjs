// Findings of the first outside security review, each tried through a real wrangler dev where
// the Worker, D1 or the proxy is part of the story (the rules themselves are tested natively in
// crates/core/tests/).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { request as httpsRequest } from "node:https";
import { startGatehouse, freePort } from "./harness.mjs";
import {
  REDIRECT_URI, adminApi, loginThroughForm, pkceAuthorizeUrl, tokenRequest, userinfo, CookieJar, send,
} from "./helpers.mjs";

const VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
let local, hosted, origin, originPort;

/**
 * A request to `gh` as if it arrived for `host` (the Host header decides the request's origin);
 * over https when `gh` serves https (its certificate names localhost, not `host`).
 */
function hostRequest(gh, host, path, { method = "GET", headers = {}, body } = {}) {
  const port = new URL(gh.url).port;
  const tls = gh.certPath ? { ca: readFileSync(gh.certPath), servername: "localhost" } : {};
  const send = gh.certPath ? httpsRequest : request;
  return new Promise((ok, fail) => {
    const req = send({ host: "127.0.0.1", port, path, method, headers: { host, ...headers }, ...tls }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", fail);
    req.end(body);
  });
}

before(async () => {
  originPort = await freePort();
  origin = createServer((req, res) => {
    res.writeHead(200, {
      "content-type": "application/json",
      // A compromised or careless app trying to act for Gatehouse on a shared host.
      "set-cookie": ["__Host-gh_session=fixed.by-the-app; Path=/; Secure", "gh_csrf=fixed; Path=/", "app=1; Path=/"],
      "service-worker-allowed": "/",
    });
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise((ok) => origin.listen(originPort, "127.0.0.1", ok));
  // The shipped default: no GATEHOUSE_ISSUER (fine on loopback only).
  local = await startGatehouse();
  // A deployment: the issuer is https://id.example.com, apps live on other hosts. Over https:
  // with an https issuer, plain http is only redirected or refused (tests/e2e/edge.test.mjs).
  hosted = await startGatehouse({
    https: true,
    // /healthz is not Gatehouse's on 127.0.0.1 when the issuer is another host.
    readyPath: "/.gatehouse/callback",
    vars: {
      GATEHOUSE_ISSUER: "https://id.example.com",
      GATEHOUSE_RATE_LIMIT_RPS: "5",
      GATEHOUSE_PAGE_RATE_LIMIT_RPS: "1",
      GATEHOUSE_PAGE_RATE_LIMIT_BURST: "3",
    },
  });
  // The admin API answers on the issuer's host only.
  for (const app of [
    { id: "site", name: "Site", host: "app.example.com", path_prefix: "/", require_login: false },
    { id: "console", name: "Console", host: "app.example.com", path_prefix: "/console/", disabled: true },
  ]) {
    const r = await hostRequest(hosted, "id.example.com", `/admin/api/apps/${app.id}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${hosted.secrets.GATEHOUSE_ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ origin: `http://127.0.0.1:${originPort}`, ...app }),
    });
    assert.equal(r.status, 201, r.text);
  }
});
after(async () => {
  await local?.stop();
  await hosted?.stop();
  origin?.close();
});

test("outside loopback, Gatehouse refuses to serve without an https GATEHOUSE_ISSUER", async () => {
  const r = await hostRequest(local, "id.example.com", "/.well-known/openid-configuration");
  assert.equal(r.status, 500);
  assert.match(r.text, /server_misconfigured/);
  // The operator's log names the setting (it reaches wrangler's output a moment later).
  for (let i = 0; i < 50 && !/GATEHOUSE_ISSUER must be set/.test(local.logs()); i++) {
    await new Promise((ok) => setTimeout(ok, 100));
  }
  assert.match(local.logs(), /GATEHOUSE_ISSUER must be set to an https URL/);
  const ok = await hostRequest(hosted, "id.example.com", "/.well-known/openid-configuration");
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.text).issuer, "https://id.example.com");
});

test("an app host serves its app and /.gatehouse/ only: no login form, admin API or discovery there", async () => {
  for (const path of ["/.well-known/openid-configuration", "/oauth2/authorize?client_id=x", "/admin/api/users", "/healthz"]) {
    const r = await hostRequest(hosted, "app.example.com", path, {
      headers: { authorization: `Bearer ${hosted.secrets.GATEHOUSE_ADMIN_TOKEN}` },
    });
    assert.equal(r.status, 200, path);
    assert.equal(JSON.parse(r.text).path, path, `${path} went to the app's origin`);
  }
  const cb = await hostRequest(hosted, "app.example.com", "/.gatehouse/callback?code=nothing");
  assert.equal(cb.status, 400, "/.gatehouse/ stays Gatehouse's");
  // Gatehouse's pages on an app host (errors, 503) style themselves from /.gatehouse/static/.
  assert.match(cb.text, /href="\/\.gatehouse\/static\/gatehouse\.css"/);
  const css = await hostRequest(hosted, "app.example.com", "/.gatehouse/static/gatehouse.css");
  assert.equal(css.status, 200);
  assert.match(css.text, /font-family/);
  const appsOwn = await hostRequest(hosted, "app.example.com", "/static/gatehouse.css");
  assert.equal(JSON.parse(appsOwn.text).path, "/static/gatehouse.css", "/static/ is the app's there");
});

test("an origin cannot set Gatehouse's cookies or widen a service worker's scope", async () => {
  const r = await hostRequest(hosted, "app.example.com", "/page");
  assert.equal(r.status, 200);
  assert.deepEqual(r.headers["set-cookie"], ["app=1; Path=/"]);
  assert.equal(r.headers["service-worker-allowed"], undefined);
});

test("a disabled app answers 503 instead of falling through to the public app beside it", async () => {
  for (const path of ["/console/", "/console/users"]) {
    const r = await hostRequest(hosted, "app.example.com", path);
    assert.equal(r.status, 503, path);
    assert.doesNotMatch(r.text, /"path"/, "never reached the origin");
  }
});

test("CSP reports are bounded in size and rate limited per IP", async () => {
  const post = (body, ip) =>
    hostRequest(hosted, "app.example.com", "/.gatehouse/csp-report", {
      method: "POST",
      headers: { "content-type": "application/csp-report", "cf-connecting-ip": ip },
      body,
    });
  assert.equal((await post(JSON.stringify({ "csp-report": { x: "y".repeat(5000) } }), "192.0.2.1")).status, 413);
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await post("{}", "192.0.2.2")).status);
  assert.deepEqual(statuses, [204, 204, 204, 429, 429, 429]);
});

test("authorize is rate limited per IP with its own generous bucket", async () => {
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const r = await hostRequest(hosted, "id.example.com", "/oauth2/authorize?client_id=nobody", {
      headers: { "cf-connecting-ip": "192.0.2.3" },
    });
    statuses.push(r.status);
  }
  assert.deepEqual(statuses, [400, 400, 400, 429, 429]);
});

// ------------------------------------------------------------------------------------------------
// Codes and refresh tokens through D1: consumed only in the batch that writes their tokens.

async function codeFor(gh, client, user, jar = new CookieJar()) {
  const flow = await loginThroughForm({ authorizeUrl: pkceAuthorizeUrl(gh, client.client_id), username: user.username, jar });
  return flow.params.code;
}

const exchange = (gh, client, code, auth = "basic") =>
  tokenRequest(
    gh,
    { grant_type: "authorization_code", code, redirect_uri: REDIRECT_URI, code_verifier: VERIFIER },
    { clientId: client.client_id, clientSecret: client.client_secret, auth },
  );

test("a code presented by another client is refused and stays redeemable by its owner", async () => {
  const admin = adminApi(local);
  const owner = await admin.createClient();
  const stranger = await admin.createClient({ token_endpoint_auth_method: "none", grant_types: ["authorization_code"] });
  const code = await codeFor(local, owner, await admin.createUser());
  const r = await exchange(local, stranger, code, "none");
  assert.equal(r.json.error, "invalid_grant");
  const ok = await exchange(local, owner, code);
  assert.equal(ok.status, 200, ok.text);
});

test("two concurrent redemptions of one code: exactly one gets tokens, and the replay revokes them", async () => {
  const admin = adminApi(local);
  const client = await admin.createClient();
  const code = await codeFor(local, client, await admin.createUser());
  const results = await Promise.all([exchange(local, client, code), exchange(local, client, code)]);
  const winners = results.filter((r) => r.status === 200);
  assert.equal(winners.length, 1, results.map((r) => r.text).join("\n"));
  assert.equal(results.find((r) => r.status !== 200).json.error, "invalid_grant");
  assert.equal((await userinfo(local, winners[0].json.access_token)).status, 401, "the family was revoked");
});

test("two concurrent refreshes of one token: exactly one gets tokens, and the replay revokes them", async () => {
  const admin = adminApi(local);
  const client = await admin.createClient();
  const user = await admin.createUser();
  const flow = await loginThroughForm({
    authorizeUrl: pkceAuthorizeUrl(local, client.client_id, { scope: "openid offline_access" }),
    username: user.username,
  });
  const first = await exchange(local, client, flow.params.code);
  const refresh = () =>
    tokenRequest(
      local,
      { grant_type: "refresh_token", refresh_token: first.json.refresh_token },
      { clientId: client.client_id, clientSecret: client.client_secret },
    );
  const results = await Promise.all([refresh(), refresh()]);
  const winners = results.filter((r) => r.status === 200);
  assert.equal(winners.length, 1, results.map((r) => r.text).join("\n"));
  assert.equal((await userinfo(local, winners[0].json.access_token)).status, 401, "the family was revoked");
});

test("a refresh asking a wider scope by mistake leaves the refresh token usable", async () => {
  const admin = adminApi(local);
  const client = await admin.createClient();
  const flow = await loginThroughForm({
    authorizeUrl: pkceAuthorizeUrl(local, client.client_id, { scope: "openid offline_access" }),
    username: (await admin.createUser()).username,
  });
  const first = await exchange(local, client, flow.params.code);
  const refresh = (extra = {}) =>
    tokenRequest(
      local,
      { grant_type: "refresh_token", refresh_token: first.json.refresh_token, ...extra },
      { clientId: client.client_id, clientSecret: client.client_secret },
    );
  assert.equal((await refresh({ scope: "openid email" })).json.error, "invalid_scope");
  const r = await refresh();
  assert.equal(r.status, 200, r.text);
});

test("prompt=none with another user's id_token_hint answers login_required, a garbage hint invalid_request", async () => {
  const admin = adminApi(local);
  const client = await admin.createClient();
  const bob = await admin.createUser();
  const bobsCode = await codeFor(local, client, bob);
  const bobsIdToken = (await exchange(local, client, bobsCode)).json.id_token;
  assert.ok(bobsIdToken);
  const jar = new CookieJar();
  await codeFor(local, client, await admin.createUser(), jar);
  const errorFor = async (hint) => {
    const url = pkceAuthorizeUrl(local, client.client_id);
    url.searchParams.set("prompt", "none");
    url.searchParams.set("id_token_hint", hint);
    const r = await send(jar, url);
    assert.ok([302, 303].includes(r.status), `${r.status}`);
    const back = new URL(r.headers.get("location"));
    assert.equal(back.origin + back.pathname, REDIRECT_URI);
    return back.searchParams.get("error");
  };
  assert.equal(await errorFor(bobsIdToken), "login_required");
  assert.equal(await errorFor("garbage"), "invalid_request");
});
