// Admin API: bearer authentication, users and clients.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGatehouse } from "./harness.mjs";
import {
  PASSWORD, REDIRECT_URI, adminApi, keyPaths, uniq, tokenRequest, oidcConfig, codeFlow,
} from "./helpers.mjs";

let gh, admin;
before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
});
after(async () => { await gh?.stop(); });

/** No password, hash or secret-hash field anywhere, and the plaintext password nowhere. */
function assertNoSecrets(r, { password, clientSecret } = {}) {
  const leaky = keyPaths(r.json ?? {}).filter((p) => /(hash|^password$|salt|argon)/i.test(p.split(".").pop()));
  assert.deepEqual(leaky, [], `response leaks ${leaky.join(", ")}`);
  assert.doesNotMatch(r.text, /\$argon2/i, "PHC hash string in response");
  if (password) assert.ok(!r.text.includes(password), "plaintext password echoed");
  if (clientSecret) assert.ok(!r.text.includes(clientSecret), "client secret echoed");
}

test("admin API: missing or wrong token -> 401 with WWW-Authenticate: Bearer, nothing revealed", async () => {
  const token = gh.secrets.GATEHOUSE_ADMIN_TOKEN;
  const cases = [
    ["missing", null],
    ["wrong", "Bearer wrong-token"],
    ["truncated", `Bearer ${token.slice(0, -1)}`],
    ["token with suffix", `Bearer ${token}x`],
    ["Basic scheme", `Basic ${Buffer.from(`admin:${token}`).toString("base64")}`],
    ["empty bearer", "Bearer "],
  ];
  const requests = [
    ["GET", "/admin/api/users", undefined],
    ["POST", "/admin/api/users", { username: uniq("u"), email: "x@example.test", password: PASSWORD }],
    ["POST", "/admin/api/clients", { client_name: "x", redirect_uris: [REDIRECT_URI] }],
    ["GET", "/admin/api/clients/whatever", undefined],
  ];
  for (const [method, path, body] of requests) {
    for (const [name, auth] of cases) {
      const r = await admin.call(method, path, body, { auth });
      assert.equal(r.status, 401, `${method} ${path} (${name}): ${r.status}`);
      assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer\b/i, `${method} ${path} (${name})`);
      assert.ok(r.json && typeof r.json === "object", `${method} ${path} (${name}): JSON body`);
      assert.ok(!r.text.includes(token), "token echoed");
      assert.ok(!/GATEHOUSE_ADMIN_TOKEN/.test(r.text), "setting name revealed");
    }
  }
  // nothing was created by the refused POST
  const list = await admin.call("GET", "/admin/api/users");
  assert.equal(list.status, 200);
  assert.equal(list.json.users.length, 0);
});

test("users: create, read, list, update, disable, delete; no hash ever returned", async () => {
  const username = uniq("alice");
  const password = "correct horse battery staple 2";
  const created = await admin.call("POST", "/admin/api/users", {
    username, email: `${username}@example.test`, password, name: "Alice A.",
  });
  assert.equal(created.status, 201, created.text);
  assertNoSecrets(created, { password });
  const u = created.json;
  assert.ok(u.id);
  assert.equal(u.username, username);
  assert.equal(u.email, `${username}@example.test`);
  assert.equal(u.name, "Alice A.");
  assert.equal(u.disabled, false);

  const got = await admin.call("GET", `/admin/api/users/${u.id}`);
  assert.equal(got.status, 200);
  assertNoSecrets(got, { password });
  assert.equal(got.json.id, u.id);
  assert.equal(got.json.username, username);

  const list = await admin.call("GET", "/admin/api/users");
  assert.equal(list.status, 200);
  assertNoSecrets(list, { password });
  assert.ok(Array.isArray(list.json.users));
  assert.ok(list.json.users.some((x) => x.id === u.id));

  const patched = await admin.call("PATCH", `/admin/api/users/${u.id}`, { name: "Alice B.", email: `new-${username}@example.test` });
  assert.equal(patched.status, 200, patched.text);
  assertNoSecrets(patched);
  assert.equal(patched.json.name, "Alice B.");
  assert.equal(patched.json.email, `new-${username}@example.test`);
  assert.equal((await admin.call("GET", `/admin/api/users/${u.id}`)).json.name, "Alice B.");

  const newPassword = "correct horse battery staple 3";
  const pw = await admin.call("PATCH", `/admin/api/users/${u.id}`, { password: newPassword });
  assert.equal(pw.status, 200, pw.text);
  assertNoSecrets(pw, { password: newPassword });

  const dis = await admin.call("PATCH", `/admin/api/users/${u.id}`, { disabled: true });
  assert.equal(dis.status, 200);
  assert.equal(dis.json.disabled, true);
  assertNoSecrets(dis);

  const del = await admin.call("DELETE", `/admin/api/users/${u.id}`);
  assert.ok([200, 204].includes(del.status), `delete status ${del.status}`);
  const gone = await admin.call("GET", `/admin/api/users/${u.id}`);
  assert.equal(gone.status, 404);
  const patchGone = await admin.call("PATCH", `/admin/api/users/${u.id}`, { name: "x" });
  assert.equal(patchGone.status, 404);
});

test("users: a password change takes effect at the login form", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const newPassword = "correct horse battery staple 4";
  await admin.patchUser(user.id, { password: newPassword });
  await assert.rejects(codeFlow(config, user), /401/);
  const { claims } = await codeFlow(config, { ...user, password: newPassword });
  assert.ok(claims.sub);
});

test("users: validation (duplicate username 409, short password, missing fields 400)", async () => {
  const user = await admin.createUser();
  const dup = await admin.call("POST", "/admin/api/users", { username: user.username, email: "d@example.test", password: PASSWORD });
  assert.equal(dup.status, 409, dup.text);
  assertNoSecrets(dup, { password: PASSWORD });
  const dupCase = await admin.call("POST", "/admin/api/users", { username: user.username.toUpperCase(), email: "d@example.test", password: PASSWORD });
  assert.equal(dupCase.status, 409, "usernames are case-insensitive (COLLATE NOCASE)");
  const short = await admin.call("POST", "/admin/api/users", { username: uniq("s"), email: "s@example.test", password: "1234567" });
  assert.equal(short.status, 400, short.text);
  const missing = await admin.call("POST", "/admin/api/users", { username: uniq("m"), email: "m@example.test" });
  assert.equal(missing.status, 400, missing.text);
  const shortPatch = await admin.call("PATCH", `/admin/api/users/${user.id}`, { password: "short" });
  assert.equal(shortPatch.status, 400, shortPatch.text);
  const notJson = await admin.call("POST", "/admin/api/users", undefined, { headers: { "content-type": "text/plain" } });
  assert.ok(notJson.status >= 400 && notJson.status < 500, `status ${notJson.status}`);
});

test("clients: create (secret shown once), get (never the secret), rotate, disable, delete", async () => {
  const body = {
    client_name: "Admin test app",
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: ["http://127.0.0.1:9/bye"],
    grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    scope: "openid profile email offline_access",
    id_token_signed_response_alg: "ES256",
    first_party: true,
  };
  const created = await admin.call("POST", "/admin/api/clients", body);
  assert.equal(created.status, 201, created.text);
  const c = created.json;
  assert.ok(c.client_id);
  assert.ok(typeof c.client_secret === "string" && c.client_secret.length >= 32, "a strong secret shown once");
  assert.equal(c.client_name, body.client_name);
  assert.deepEqual(c.redirect_uris, body.redirect_uris);
  assert.equal(c.token_endpoint_auth_method, "client_secret_basic");
  assert.equal(c.id_token_signed_response_alg, "ES256");
  assert.ok(!keyPaths(c).some((p) => /hash/i.test(p)), "no hash in create response");

  const got = await admin.call("GET", `/admin/api/clients/${c.client_id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.client_id, c.client_id);
  assert.equal(got.json.client_secret, undefined, "GET never returns the secret");
  assertNoSecrets(got, { clientSecret: c.client_secret });
  assert.deepEqual(got.json.post_logout_redirect_uris, body.post_logout_redirect_uris);
  assert.deepEqual([...got.json.grant_types].sort(), [...body.grant_types].sort());
  assert.equal(got.json.first_party, true);

  const cc = (secret) => tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: secret });
  assert.equal((await cc(c.client_secret)).status, 200);

  const rot = await admin.call("POST", `/admin/api/clients/${c.client_id}/secret`);
  assert.equal(rot.status, 200, rot.text);
  assert.equal(rot.json.client_id, c.client_id);
  assert.ok(rot.json.client_secret && rot.json.client_secret !== c.client_secret);
  assert.equal((await cc(c.client_secret)).status, 401, "old secret refused after rotation");
  assert.equal((await cc(rot.json.client_secret)).status, 200, "new secret works");
  const got2 = await admin.call("GET", `/admin/api/clients/${c.client_id}`);
  assertNoSecrets(got2, { clientSecret: rot.json.client_secret });
  assert.equal(got2.json.client_secret, undefined);

  const dis = await admin.call("PATCH", `/admin/api/clients/${c.client_id}`, { disabled: true });
  assert.equal(dis.status, 200, dis.text);
  assert.equal(dis.json.disabled, true);
  assert.equal(dis.json.client_secret, undefined);
  const refused = await cc(rot.json.client_secret);
  assert.equal(refused.status, 401);
  assert.equal(refused.json?.error, "invalid_client");

  const del = await admin.call("DELETE", `/admin/api/clients/${c.client_id}`);
  assert.ok([200, 204].includes(del.status), `delete status ${del.status}`);
  assert.equal((await admin.call("GET", `/admin/api/clients/${c.client_id}`)).status, 404);
  assert.equal((await cc(rot.json.client_secret)).status, 401);
  assert.equal((await admin.call("POST", `/admin/api/clients/${c.client_id}/secret`)).status, 404);
});

test("clients: a public client gets no secret and cannot rotate one", async () => {
  const c = await admin.createClient({ token_endpoint_auth_method: "none" });
  assert.equal(c.client_secret, undefined);
  const got = await admin.call("GET", `/admin/api/clients/${c.client_id}`);
  assert.equal(got.json.token_endpoint_auth_method, "none");
  assert.equal(got.json.client_secret, undefined);
  const rot = await admin.call("POST", `/admin/api/clients/${c.client_id}/secret`);
  assert.ok(rot.status >= 400 && rot.status < 500, `rotate on a public client: ${rot.status}`);
});

test("clients: invalid metadata is refused with 400", async () => {
  const good = {
    client_name: "bad",
    redirect_uris: [REDIRECT_URI],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    scope: "openid",
  };
  const bad = {
    "alg none": { id_token_signed_response_alg: "none" },
    "alg HS256": { id_token_signed_response_alg: "HS256" },
    "unknown auth method": { token_endpoint_auth_method: "private_key_jwt_typo" },
    "password grant": { grant_types: ["password"] },
    "implicit grant": { grant_types: ["implicit"], response_types: ["token"] },
    "fragment in redirect_uri": { redirect_uris: [`${REDIRECT_URI}#frag`] },
    "relative redirect_uri": { redirect_uris: ["/cb"] },
    "javascript redirect_uri": { redirect_uris: ["javascript:alert(1)"] },
    "code flow without redirect_uris": { redirect_uris: [] },
    "public client with client_credentials": { token_endpoint_auth_method: "none", grant_types: ["client_credentials"], response_types: [], redirect_uris: [] },
  };
  for (const [name, patch] of Object.entries(bad)) {
    const r = await admin.call("POST", "/admin/api/clients", { ...good, ...patch });
    assert.equal(r.status, 400, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.ok(r.json?.error, `${name}: JSON error body`);
  }
});

test("clients: a redirect URI with userinfo, a backslash or an escaped host cannot register (plain http to any host)", async () => {
  // `http://localhost:@evil.example/cb` passed as "http on localhost": the part before `@` is
  // userinfo, and a browser goes to evil.example in the clear (RFC 6749 §3.1.2, RFC 8252 §8.3).
  for (const uri of [
    "http://localhost:@evil.example/cb",
    "http://127.0.0.1:80@evil.example/cb",
    "https://rp.example.com@evil.example/cb",
    "https://evil.example\\.rp.example.com/cb",
    "https://evil.example%2Frp.example.com/cb",
    "http://[::1%25lo]/cb",
    "https://rp.example.com/cb\u65e5",
  ]) {
    for (const field of ["redirect_uris", "post_logout_redirect_uris"]) {
      const r = await admin.call("POST", "/admin/api/clients", { redirect_uris: [REDIRECT_URI], [field]: [uri] });
      assert.equal(r.status, 400, `${field} ${uri}: ${r.status}`);
      assert.equal(r.json?.error, "invalid_redirect_uri", `${field} ${uri}`);
    }
  }
});

test("apps: a CSP or header field is checked against its grammar; a second policy, a stray directive or a character no header carries is refused", async () => {
  const app = (headers) => ({ name: "Wiki", host: "wiki.example.test", origin: "http://127.0.0.1:9", headers });
  for (const headers of [
    { content_security_policy: "default-src 'self', script-src *" },
    { content_security_policy: "default-src 'self'; scirpt-src 'self'" },
    { content_security_policy: "default-src 'self' https://\u4f8b\u3048.jp" },
    { csp_report_uri: "/.gatehouse/csp-report; script-src *" },
    { referrer_policy: "no-referrer; x" },
    { permissions_policy: "camera=(); script-src *" },
    { cross_origin_opener_policy: "same-origin, unsafe-none" },
  ]) {
    const r = await admin.call("POST", "/admin/api/apps", app(headers));
    assert.equal(r.status, 400, `${JSON.stringify(headers)}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(r.json?.error, "invalid_request");
  }
  const ok = await admin.call("POST", "/admin/api/apps", app({
    content_security_policy: "default-src 'self'; img-src 'self' data:; object-src 'none'",
    csp_report_uri: "/.gatehouse/csp-report",
  }));
  assert.equal(ok.status, 201, ok.text);
});

test("apps: an app cannot live on Gatehouse's own host name, on any port", async () => {
  // Here the issuer is the origin the request came to: http://127.0.0.1:PORT.
  const port = new URL(gh.url).port;
  for (const host of [`127.0.0.1:${port}`, "127.0.0.1", "127.0.0.1:9999"]) {
    const r = await admin.call("POST", "/admin/api/apps", { name: "Local", host, path_prefix: "/app/", origin: "http://127.0.0.1:9" });
    assert.equal(r.status, 400, `${host}: ${r.status}`);
    assert.match(r.json?.error_description ?? "", /Gatehouse's own host name/);
  }
  const r = await admin.call("POST", "/admin/api/apps", { name: "Local", host: `localhost:${port}`, path_prefix: "/app/", origin: "http://127.0.0.1:9" });
  assert.equal(r.status, 201, r.text);
});
