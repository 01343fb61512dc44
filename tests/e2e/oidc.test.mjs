// OpenID Connect / OAuth 2.0 flows against a real `wrangler dev`, with openid-client as the RP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oc from "openid-client";
import * as jose from "jose";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { startGatehouse } from "./harness.mjs";
import {
  REDIRECT_URI, POST_LOGOUT_URI, PASSWORD,
  adminApi, oidcConfig, authRequest, codeFlow, loginThroughForm, openLoginPage,
  CookieJar, send, postForm, isRedirect, tokenRequest, clientPost, userinfo, atHash, oauthErrorOf,
  findLoginForm,
} from "./helpers.mjs";

let gh, admin;
before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
});
after(async () => { await gh?.stop(); });

const SESSION_COOKIE = "gh_session";
const CSRF_COOKIE = "gh_csrf";

// ----------------------------------------------------------------------------------------------
// Discovery and keys

test("discovery document advertises the contract", async () => {
  const r = await fetch(`${gh.url}/.well-known/openid-configuration`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /application\/json/);
  const d = await r.json();
  assert.equal(d.issuer, gh.url);
  assert.equal(d.authorization_endpoint, `${gh.url}/oauth2/authorize`);
  assert.equal(d.token_endpoint, `${gh.url}/oauth2/token`);
  assert.equal(d.userinfo_endpoint, `${gh.url}/oauth2/userinfo`);
  assert.equal(d.jwks_uri, `${gh.url}/oauth2/jwks.json`);
  assert.equal(d.revocation_endpoint, `${gh.url}/oauth2/revoke`);
  assert.equal(d.introspection_endpoint, `${gh.url}/oauth2/introspect`);
  assert.equal(d.end_session_endpoint, `${gh.url}/oauth2/logout`);
  assert.deepEqual(d.response_types_supported, ["code"]);
  assert.deepEqual(d.code_challenge_methods_supported, ["S256"]);
  assert.equal(d.authorization_response_iss_parameter_supported, true);
  for (const g of ["authorization_code", "refresh_token", "client_credentials"]) {
    assert.ok(d.grant_types_supported.includes(g), `grant_types_supported lacks ${g}`);
  }
  for (const g of ["password", "implicit"]) {
    assert.ok(!d.grant_types_supported.includes(g), `grant_types_supported must not list ${g}`);
  }
  for (const a of ["RS256", "ES256"]) assert.ok(d.id_token_signing_alg_values_supported.includes(a));
  assert.ok(!d.id_token_signing_alg_values_supported.includes("none"));
  for (const m of ["client_secret_basic", "client_secret_post", "none"]) {
    assert.ok(d.token_endpoint_auth_methods_supported.includes(m), `token auth method ${m}`);
  }
  assert.ok(Array.isArray(d.subject_types_supported) && d.subject_types_supported.length > 0);
  assert.ok(d.scopes_supported.includes("openid"));
  assert.deepEqual(d.acr_values_supported, [`${gh.url}/acr/1fa`, `${gh.url}/acr/mfa`]);
  for (const c of ["acr", "amr", "auth_time"]) assert.ok(d.claims_supported.includes(c), `claims_supported lacks ${c}`);
  for (const s of ["address", "phone"]) assert.ok(d.scopes_supported.includes(s), `scopes_supported lacks ${s}`);
  for (const c of ["given_name", "phone_number", "address", "birthdate"]) assert.ok(d.claims_supported.includes(c), c);
  assert.equal(d.claims_parameter_supported, true);
  // openid-client accepts it too (issuer match etc.)
  const config = await oc.discovery(new URL(gh.url), "nobody", undefined, undefined, { execute: [oc.allowInsecureRequests] });
  assert.equal(config.serverMetadata().issuer, gh.url);
});

test("JWKS publishes an RS256 RSA key and an ES256 P-256 key, public parts only", async () => {
  const r = await fetch(`${gh.url}/oauth2/jwks.json`);
  assert.equal(r.status, 200);
  const { keys } = await r.json();
  const rsa = keys.find((k) => k.kty === "RSA");
  const ec = keys.find((k) => k.kty === "EC");
  assert.ok(rsa, "RSA key present");
  assert.ok(ec, "EC key present");
  assert.equal(rsa.alg, "RS256");
  assert.equal(rsa.use, "sig");
  assert.ok(rsa.kid && rsa.n && rsa.e);
  assert.equal(ec.alg, "ES256");
  assert.equal(ec.use, "sig");
  assert.equal(ec.crv, "P-256");
  assert.ok(ec.kid && ec.x && ec.y);
  assert.notEqual(rsa.kid, ec.kid);
  for (const k of keys) {
    for (const priv of ["d", "p", "q", "dp", "dq", "qi", "k"]) {
      assert.ok(!(priv in k), `JWKS key ${k.kid} leaks private member ${priv}`);
    }
  }
});

// ----------------------------------------------------------------------------------------------
// Authorization code + PKCE

test("code flow + PKCE through the real login form (confidential, client_secret_basic)", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ token_endpoint_auth_method: "client_secret_basic" });
  assert.ok(c.client_secret, "confidential client gets a secret");
  const config = await oidcConfig(gh, c);
  const req = await authRequest(config, { scope: "openid profile email" });

  // authorize without a session -> 303 to the login page
  const jar = new CookieJar();
  const a = await send(jar, req.url);
  assert.equal(a.status, 303);
  const loginUrl = new URL(a.headers.get("location"), req.url);
  assert.equal(loginUrl.pathname, "/oauth2/login");
  assert.ok(loginUrl.searchParams.get("req"), "login redirect carries req");

  // the login page: form, hidden csrf + req, CSRF cookie
  const page = await send(jar, loginUrl);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  const html = await page.text();
  const form = findLoginForm(html);
  assert.ok(form, "login form present");
  assert.equal(form.method, "post");
  assert.equal(new URL(form.action, loginUrl).pathname, "/oauth2/login");
  assert.ok(form.fields.csrf, "hidden csrf");
  assert.equal(form.fields.req, loginUrl.searchParams.get("req"));
  assert.ok(form.inputs.some((i) => i.name === "username"));
  assert.ok(form.buttons.some((b) => (b.type ?? "submit") === "submit"), "submit button");
  assert.ok(jar.get(CSRF_COOKIE), `${CSRF_COOKIE} cookie set by the login page`);

  // POST the form -> 303 to resume, with the SSO session cookie
  const post = await postForm(jar, new URL(form.action, loginUrl), { ...form.fields, username: user.username, password: user.password });
  assert.equal(post.status, 303);
  const resume = new URL(post.headers.get("location"), loginUrl);
  assert.equal(resume.pathname, "/oauth2/authorize/resume");
  assert.equal(resume.searchParams.get("req"), form.fields.req);
  const sc = post.headers.getSetCookie().find((l) => l.startsWith(`${SESSION_COOKIE}=`));
  assert.ok(sc, "session cookie set");
  assert.match(sc, /;\s*HttpOnly/i);
  assert.match(sc, /;\s*SameSite=Lax/i);
  assert.match(sc, /;\s*Path=\//i);

  // resume -> redirect_uri with code, state, iss
  const back = await send(jar, resume);
  assert.ok([302, 303].includes(back.status), `resume status ${back.status}`);
  const cb = new URL(back.headers.get("location"));
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.ok(cb.searchParams.get("code"));
  assert.equal(cb.searchParams.get("state"), req.state);
  assert.equal(cb.searchParams.get("iss"), gh.url);

  const tokens = await oc.authorizationCodeGrant(config, cb, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
  });
  assert.equal(tokens.token_type, "bearer");
  assert.ok(tokens.access_token);
  assert.equal(tokens.refresh_token, undefined, "no refresh token without offline_access");
  const claims = tokens.claims();
  assert.equal(claims.iss, gh.url);
  assert.equal(claims.aud === c.client_id || (Array.isArray(claims.aud) && claims.aud.includes(c.client_id)), true);
  assert.equal(claims.nonce, req.nonce);
  assert.equal(claims.at_hash, atHash(tokens.access_token));
  assert.equal(typeof claims.auth_time, "number");
  assert.ok(Math.abs(claims.auth_time - Date.now() / 1000) < 120);
  // OIDC Core §2 / RFC 8176: signed in with a password, one factor.
  assert.deepEqual(claims.amr, ["pwd"]);
  assert.equal(claims.acr, `${gh.url}/acr/1fa`);
  const { alg } = jose.decodeProtectedHeader(tokens.id_token);
  assert.equal(alg, "RS256");
});

test("token responses are JSON with Cache-Control: no-store; errors are RFC 6749 §5.2 JSON", async () => {
  const c = await admin.createServiceClient();
  const ok = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.headers.get("content-type") ?? "", /application\/json/);
  assert.match(ok.headers.get("cache-control") ?? "", /no-store/);
  const bad = await tokenRequest(gh, { grant_type: "password", username: "x", password: "y" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get("content-type") ?? "", /application\/json/);
  assert.equal(bad.json?.error, "unsupported_grant_type");
  const wrong = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: "wrong-secret" });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json?.error, "invalid_client");
  assert.match(wrong.headers.get("www-authenticate") ?? "", /^Basic/i, "RFC 6749 §5.2: 401 after Basic auth carries WWW-Authenticate");
  const unknown = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: "no-such-client", clientSecret: "x" });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.json?.error, "invalid_client");
});

test("public client (token_endpoint_auth_method none) with PKCE", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ token_endpoint_auth_method: "none" });
  assert.equal(c.client_secret, undefined, "public client gets no secret");
  const config = await oidcConfig(gh, c);
  const { tokens, claims } = await codeFlow(config, user, { scope: "openid profile" });
  assert.ok(tokens.access_token);
  assert.equal(claims.aud === c.client_id || claims.aud?.includes?.(c.client_id), true);
  const ui = await oc.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(ui.preferred_username, user.username);
});

test("public client: wrong or missing code_verifier -> invalid_grant", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ token_endpoint_auth_method: "none" });
  const config = await oidcConfig(gh, c);
  for (const verifier of [oc.randomPKCECodeVerifier(), undefined]) {
    const req = await authRequest(config);
    const flow = await loginThroughForm({ authorizeUrl: req.url, username: user.username });
    const params = { grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT_URI };
    if (verifier) params.code_verifier = verifier;
    const r = await tokenRequest(gh, params, { clientId: c.client_id, auth: "none" });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json?.error, "invalid_grant");
  }
});

test("ES256 client: ID token signed with the EC P-256 key from JWKS", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ id_token_signed_response_alg: "ES256" });
  const config = await oidcConfig(gh, c);
  const { tokens, req } = await codeFlow(config, user);
  const header = jose.decodeProtectedHeader(tokens.id_token);
  assert.equal(header.alg, "ES256");
  const { keys } = await (await fetch(`${gh.url}/oauth2/jwks.json`)).json();
  const ec = keys.find((k) => k.kty === "EC" && k.crv === "P-256");
  assert.equal(header.kid, ec.kid);
  const { payload } = await jose.jwtVerify(tokens.id_token, await jose.importJWK(ec, "ES256"), {
    issuer: gh.url, audience: c.client_id, algorithms: ["ES256"],
  });
  assert.equal(payload.nonce, req.nonce);
  assert.equal(payload.at_hash, atHash(tokens.access_token));
  // and it does not verify with the RSA key
  const rsa = keys.find((k) => k.kty === "RSA");
  await assert.rejects(jose.jwtVerify(tokens.id_token, await jose.importJWK(rsa, "RS256"), { algorithms: ["RS256"] }));
});

test("userinfo returns profile and email claims for the token's scopes (GET and POST)", async () => {
  const user = await admin.createUser({ name: "Ada Lovelace" });
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens, claims } = await codeFlow(config, user, { scope: "openid profile email" });
  const ui = await oc.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(ui.sub, claims.sub);
  assert.equal(ui.name, "Ada Lovelace");
  assert.equal(ui.preferred_username, user.username);
  assert.equal(ui.email, user.email);
  assert.equal(typeof ui.email_verified, "boolean");
  const post = await userinfo(gh, tokens.access_token, "POST");
  assert.equal(post.status, 200);
  assert.equal(post.json.sub, claims.sub);
  // narrower scope -> no email
  const narrow = await codeFlow(config, user, { scope: "openid profile", jar: undefined });
  const ui2 = (await userinfo(gh, narrow.tokens.access_token)).json;
  assert.equal(ui2.sub, claims.sub);
  assert.equal(ui2.email, undefined, "email claim only with the email scope");
  // no token / bad token -> 401 with a Bearer challenge
  const none = await fetch(`${gh.url}/oauth2/userinfo`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/i);
  const bad = await userinfo(gh, "not-a-token");
  assert.equal(bad.status, 401);
  assert.match(bad.headers.get("www-authenticate") ?? "", /^Bearer/i);
});

// ----------------------------------------------------------------------------------------------
// Refresh tokens

test("refresh tokens rotate; an old refresh token is refused afterwards", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens, claims } = await codeFlow(config, user, { scope: "openid profile offline_access" });
  const r1 = tokens.refresh_token;
  assert.ok(r1, "offline_access yields a refresh token");
  const t2 = await oc.refreshTokenGrant(config, r1);
  assert.ok(t2.refresh_token && t2.refresh_token !== r1, "refresh token rotated");
  assert.ok(t2.access_token && t2.access_token !== tokens.access_token);
  const ui = await oc.fetchUserInfo(config, t2.access_token, claims.sub);
  assert.equal(ui.sub, claims.sub);
  const t3 = await oc.refreshTokenGrant(config, t2.refresh_token);
  assert.ok(t3.refresh_token && t3.refresh_token !== t2.refresh_token);
  const again = await tokenRequest(gh, { grant_type: "refresh_token", refresh_token: r1 }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(again.status, 400, again.text);
  assert.equal(again.json?.error, "invalid_grant");
});

test("refresh token reuse revokes the whole family, including the newest refresh token", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens } = await codeFlow(config, user, { scope: "openid offline_access" });
  const r1 = tokens.refresh_token;
  const t2 = await oc.refreshTokenGrant(config, r1);
  // replay of r1 (e.g. stolen copy)
  assert.equal(await oauthErrorOf(oc.refreshTokenGrant(config, r1)), "invalid_grant");
  // the legitimate newest refresh token is now dead too
  const newest = await tokenRequest(gh, { grant_type: "refresh_token", refresh_token: t2.refresh_token }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(newest.status, 400, newest.text);
  assert.equal(newest.json?.error, "invalid_grant");
  const intro = await oc.tokenIntrospection(config, t2.refresh_token);
  assert.equal(intro.active, false);
  // and so is the family's access token
  const ui = await userinfo(gh, t2.access_token);
  assert.equal(ui.status, 401, "access token of the revoked family must stop working");
});

test("offline_access yields no refresh token for a client not allowed the refresh_token grant", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ grant_types: ["authorization_code"] });
  const config = await oidcConfig(gh, c);
  const { tokens } = await codeFlow(config, user, { scope: "openid offline_access" });
  assert.ok(tokens.access_token);
  assert.equal(tokens.refresh_token, undefined);
});

test("a refresh token presented by another client is refused", async () => {
  const user = await admin.createUser();
  const a = await admin.createClient();
  const b = await admin.createClient();
  const cfgA = await oidcConfig(gh, a);
  const { tokens } = await codeFlow(cfgA, user, { scope: "openid offline_access" });
  const r = await tokenRequest(gh, { grant_type: "refresh_token", refresh_token: tokens.refresh_token }, { clientId: b.client_id, clientSecret: b.client_secret });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json?.error, "invalid_grant");
});

// ----------------------------------------------------------------------------------------------
// Code reuse

test("authorization code is single use; reuse revokes the tokens of the first exchange", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens, callback, req } = await codeFlow(config, user, { scope: "openid profile offline_access" });
  assert.equal((await userinfo(gh, tokens.access_token)).status, 200);
  const reuse = await tokenRequest(gh, {
    grant_type: "authorization_code",
    code: callback.searchParams.get("code"),
    redirect_uri: REDIRECT_URI,
    code_verifier: req.verifier,
  }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(reuse.status, 400, reuse.text);
  assert.equal(reuse.json?.error, "invalid_grant");
  assert.equal(reuse.json?.access_token, undefined);
  const ui = await userinfo(gh, tokens.access_token);
  assert.equal(ui.status, 401, "first access token revoked after code reuse");
  const ia = await oc.tokenIntrospection(config, tokens.access_token);
  assert.equal(ia.active, false);
  const ir = await oc.tokenIntrospection(config, tokens.refresh_token);
  assert.equal(ir.active, false, "first refresh token revoked after code reuse");
  assert.equal(await oauthErrorOf(oc.refreshTokenGrant(config, tokens.refresh_token)), "invalid_grant");
});

test("a code is bound to its client and redirect_uri", async () => {
  const user = await admin.createUser();
  const a = await admin.createClient({ redirect_uris: [REDIRECT_URI, "http://127.0.0.1:9/other"] });
  const b = await admin.createClient();
  const cfgA = await oidcConfig(gh, a);
  // other client
  let req = await authRequest(cfgA);
  let flow = await loginThroughForm({ authorizeUrl: req.url, username: user.username });
  let r = await tokenRequest(gh, { grant_type: "authorization_code", code: flow.params.code, redirect_uri: REDIRECT_URI, code_verifier: req.verifier }, { clientId: b.client_id, clientSecret: b.client_secret });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json?.error, "invalid_grant");
  // other (registered) redirect_uri
  req = await authRequest(cfgA);
  flow = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: flow.jar });
  r = await tokenRequest(gh, { grant_type: "authorization_code", code: flow.params.code, redirect_uri: "http://127.0.0.1:9/other", code_verifier: req.verifier }, { clientId: a.client_id, clientSecret: a.client_secret });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json?.error, "invalid_grant");
});

// ----------------------------------------------------------------------------------------------
// Revocation and introspection

test("revocation (RFC 7009): access and refresh tokens; unknown tokens answer 200", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens } = await codeFlow(config, user, { scope: "openid offline_access" });
  await oc.tokenRevocation(config, tokens.access_token, { token_type_hint: "access_token" });
  assert.equal((await userinfo(gh, tokens.access_token)).status, 401);
  assert.equal((await oc.tokenIntrospection(config, tokens.access_token)).active, false);
  await oc.tokenRevocation(config, tokens.refresh_token);
  assert.equal(await oauthErrorOf(oc.refreshTokenGrant(config, tokens.refresh_token)), "invalid_grant");
  const unknown = await clientPost(gh, "/oauth2/revoke", { token: "definitely-not-a-token" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(unknown.status, 200);
  const noAuth = await fetch(`${gh.url}/oauth2/revoke`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "token=x",
  });
  assert.equal(noAuth.status, 401);
});

test("revocation by another client does not revoke the token", async () => {
  const user = await admin.createUser();
  const a = await admin.createClient();
  const b = await admin.createClient();
  const { tokens } = await codeFlow(await oidcConfig(gh, a), user);
  await clientPost(gh, "/oauth2/revoke", { token: tokens.access_token }, { clientId: b.client_id, clientSecret: b.client_secret });
  assert.equal((await userinfo(gh, tokens.access_token)).status, 200, "B must not be able to revoke A's token");
});

test("introspection (RFC 7662); another client's token is {active:false} (CVE-2024-47077 class)", async () => {
  const user = await admin.createUser();
  const a = await admin.createClient();
  const b = await admin.createClient();
  const cfgA = await oidcConfig(gh, a);
  const cfgB = await oidcConfig(gh, b);
  const { tokens, claims } = await codeFlow(cfgA, user, { scope: "openid profile offline_access" });
  const ia = await oc.tokenIntrospection(cfgA, tokens.access_token);
  assert.equal(ia.active, true);
  assert.equal(ia.client_id, a.client_id);
  assert.equal(ia.sub, claims.sub);
  assert.match(ia.scope, /\bopenid\b/);
  assert.equal(typeof ia.exp, "number");
  const ir = await oc.tokenIntrospection(cfgA, tokens.refresh_token);
  assert.equal(ir.active, true);
  // client B asks about A's tokens
  assert.deepEqual(await oc.tokenIntrospection(cfgB, tokens.access_token), { active: false });
  assert.deepEqual(await oc.tokenIntrospection(cfgB, tokens.refresh_token), { active: false });
  // garbage
  assert.deepEqual(await oc.tokenIntrospection(cfgA, "garbage"), { active: false });
  // unauthenticated / wrong secret
  const noAuth = await fetch(`${gh.url}/oauth2/introspect`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: tokens.access_token }).toString(),
  });
  assert.equal(noAuth.status, 401);
  const wrong = await clientPost(gh, "/oauth2/introspect", { token: tokens.access_token }, { clientId: a.client_id, clientSecret: "wrong" });
  assert.equal(wrong.status, 401);
  assert.notEqual(wrong.json?.active, true);
});

// ----------------------------------------------------------------------------------------------
// client_credentials

test("client_credentials for a confidential client that lists it", async () => {
  const c = await admin.createServiceClient({ scope: "api:read api:write" });
  const config = await oidcConfig(gh, c);
  const t = await oc.clientCredentialsGrant(config);
  assert.ok(t.access_token);
  assert.equal(t.token_type, "bearer");
  assert.equal(t.refresh_token, undefined);
  assert.equal(t.id_token, undefined);
  const i = await oc.tokenIntrospection(config, t.access_token);
  assert.equal(i.active, true);
  assert.equal(i.client_id, c.client_id);
  // with client_secret_post as well
  const cp = await admin.createServiceClient({ token_endpoint_auth_method: "client_secret_post" });
  const rp = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: cp.client_id, clientSecret: cp.client_secret, auth: "post" });
  assert.equal(rp.status, 200, rp.text);
});

test("client_credentials scopes: registered ones granted, others invalid_scope", async () => {
  const c = await admin.createServiceClient({ scope: "api:read api:write" });
  const creds = { clientId: c.client_id, clientSecret: c.client_secret };
  const ok = await tokenRequest(gh, { grant_type: "client_credentials", scope: "api:read" }, creds);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.scope, "api:read");
  for (const scope of ["api:admin", "api:read api:admin", "openid"]) {
    const r = await tokenRequest(gh, { grant_type: "client_credentials", scope }, creds);
    assert.equal(r.status, 400, `${scope}: ${r.text}`);
    assert.equal(r.json?.error, "invalid_scope", scope);
  }
});

test("client_credentials refused for clients that do not list it and for public clients", async () => {
  const c = await admin.createClient(); // authorization_code + refresh_token only
  const r = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json?.error, "unauthorized_client");
  const pub = await admin.createClient({ token_endpoint_auth_method: "none" });
  const rp = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: pub.client_id, auth: "none" });
  assert.ok([400, 401].includes(rp.status), rp.text);
  assert.ok(["unauthorized_client", "invalid_client"].includes(rp.json?.error), rp.text);
  assert.equal(rp.json?.access_token, undefined);
});

// ----------------------------------------------------------------------------------------------
// Login page behaviour, consent, prompt

test("wrong password and unknown user get the same generic 401 page with the form", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  for (const [username, password] of [[user.username, "wrong password 123"], ["no-such-user-xyz", PASSWORD]]) {
    const req = await authRequest(config);
    const { jar, url, form } = await openLoginPage(req.url);
    assert.ok(form);
    const r = await postForm(jar, new URL(form.action, url), { ...form.fields, username, password });
    assert.equal(r.status, 401);
    const html = await r.text();
    assert.match(html, /Invalid username or password\./);
    assert.ok(findLoginForm(html), "form shown again");
    assert.ok(!r.headers.getSetCookie().some((l) => l.startsWith(`${SESSION_COOKIE}=`) && !/Max-Age=0/i.test(l)), "no session cookie");
  }
});

test("login POST without the CSRF cookie or with a wrong csrf field is refused", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const req = await authRequest(config);
  const { jar, url, form } = await openLoginPage(req.url);
  const action = new URL(form.action, url);
  const fields = { ...form.fields, username: user.username, password: user.password };
  // no cookie
  const noCookie = new CookieJar();
  const r1 = await postForm(noCookie, action, fields);
  assert.ok(r1.status >= 400 && r1.status < 500, `status ${r1.status}`);
  assert.ok(!noCookie.get(SESSION_COOKIE), "no session without CSRF cookie");
  // wrong field
  const j2 = jar.clone();
  const r2 = await postForm(j2, action, { ...fields, csrf: "forged" + form.fields.csrf.slice(6) });
  assert.ok(r2.status >= 400 && r2.status < 500, `status ${r2.status}`);
  assert.ok(!j2.get(SESSION_COOKIE), "no session with a forged csrf field");
});

test("disabled user cannot log in", async () => {
  const user = await admin.createUser();
  await admin.patchUser(user.id, { disabled: true });
  const c = await admin.createClient();
  const req = await authRequest(await oidcConfig(gh, c));
  const { jar, url, form } = await openLoginPage(req.url);
  const r = await postForm(jar, new URL(form.action, url), { ...form.fields, username: user.username, password: user.password });
  assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
  assert.ok(!jar.get(SESSION_COOKIE));
});

test("consent for a third-party client: deny -> access_denied; allow -> code; remembered", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ first_party: false });
  const config = await oidcConfig(gh, c);
  // deny
  let req = await authRequest(config, { scope: "openid profile" });
  const denied = await loginThroughForm({ authorizeUrl: req.url, username: user.username, consent: "deny" });
  assert.ok(denied.sawConsent, "consent page shown for a third-party client");
  assert.equal(denied.params.error, "access_denied");
  assert.equal(denied.params.state, req.state);
  assert.equal(denied.params.iss, gh.url);
  assert.equal(denied.params.code, undefined);
  // allow (same session)
  req = await authRequest(config, { scope: "openid profile" });
  const allowed = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: denied.jar, consent: "allow" });
  assert.ok(allowed.sawConsent);
  assert.ok(allowed.params.code);
  // remembered: no consent page for the same scopes
  req = await authRequest(config, { scope: "openid profile" });
  const again = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: allowed.jar, consent: "fail" });
  assert.ok(!again.sawLogin && !again.sawConsent);
  assert.ok(again.params.code);
  // a new scope asks again
  req = await authRequest(config, { scope: "openid profile email" });
  const more = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: allowed.jar, consent: "allow" });
  assert.ok(more.sawConsent, "consent asked again for a new scope");
  // consent is per client: another third-party client asks again
  const other = await admin.createClient({ first_party: false });
  req = await authRequest(await oidcConfig(gh, other), { scope: "openid profile" });
  const otherFlow = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: allowed.jar, consent: "allow" });
  assert.ok(!otherFlow.sawLogin);
  assert.ok(otherFlow.sawConsent, "consent remembered per client, not per user");
  assert.ok(otherFlow.params.code);
});

test("first-party client skips consent; an existing session skips login", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ first_party: true });
  const config = await oidcConfig(gh, c);
  const first = await codeFlow(config, user, { consent: "fail" });
  assert.ok(first.flow.sawLogin);
  const req = await authRequest(config);
  const second = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: first.jar, consent: "fail" });
  assert.ok(!second.sawLogin, "SSO session reused");
  assert.ok(second.params.code);
});

test("prompt=none without a session -> login_required; prompt=login forces the login page", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  let req = await authRequest(config, { extra: { prompt: "none" } });
  const r = await send(new CookieJar(), req.url);
  assert.ok([302, 303].includes(r.status), `status ${r.status}`);
  const cb = new URL(r.headers.get("location"));
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.equal(cb.searchParams.get("error"), "login_required");
  assert.equal(cb.searchParams.get("state"), req.state);
  assert.equal(cb.searchParams.get("iss"), gh.url);
  // with a session, prompt=login still shows the login page
  const { jar } = await codeFlow(config, user);
  req = await authRequest(config, { extra: { prompt: "login" } });
  const again = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar });
  assert.ok(again.sawLogin, "prompt=login forces the login page");
  assert.ok(again.params.code);
  // and prompt=none with the session works silently
  req = await authRequest(config, { extra: { prompt: "none" } });
  const silent = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar, consent: "fail" });
  assert.ok(!silent.sawLogin);
  assert.ok(silent.params.code);
});

// ----------------------------------------------------------------------------------------------
// Logout

test("RP-initiated logout ends the session server-side; prompt=none then gives login_required", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens, jar } = await codeFlow(config, user);
  const sessionValue = jar.get(SESSION_COOKIE);
  assert.ok(sessionValue);
  const url = oc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state: "bye-123",
  });
  assert.equal(url.origin + url.pathname, `${gh.url}/oauth2/logout`);
  const r = await send(jar, url);
  assert.ok([302, 303].includes(r.status), `logout status ${r.status}`);
  const to = new URL(r.headers.get("location"));
  assert.equal(`${to.origin}${to.pathname}`, POST_LOGOUT_URI);
  assert.equal(to.searchParams.get("state"), "bye-123");
  // replay the old session cookie: the session must be dead server-side
  const replay = new CookieJar();
  replay.set(SESSION_COOKIE, sessionValue);
  const req = await authRequest(config, { extra: { prompt: "none" } });
  const a = await send(replay, req.url);
  assert.ok([302, 303].includes(a.status), `status ${a.status}`);
  const cb = new URL(a.headers.get("location"));
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.equal(cb.searchParams.get("error"), "login_required");
  assert.equal(cb.searchParams.get("state"), req.state);
});

test("logout does not redirect to an unregistered post_logout_redirect_uri", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const { tokens, jar } = await codeFlow(config, user);
  const url = oc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: "https://evil.example/after", state: "s",
  });
  const r = await send(jar, url);
  const loc = r.headers.get("location");
  assert.ok(!loc || !loc.startsWith("https://evil.example"), `redirected to ${loc}`);
});

// ----------------------------------------------------------------------------------------------
// Authorization request validation

test("PKCE: `plain` and a challenge without method are refused (error redirected as invalid_request)", async () => {
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const cases = {
    plain: { code_challenge: "a".repeat(43), code_challenge_method: "plain" },
    "no method (defaults to plain)": { code_challenge: "a".repeat(43) },
  };
  for (const [name, pkce] of Object.entries(cases)) {
    const url = oc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI, scope: "openid", state: "st-pkce", nonce: "n", ...pkce,
    });
    const r = await send(new CookieJar(), url);
    assert.ok([302, 303].includes(r.status), `${name}: status ${r.status}`);
    const cb = new URL(r.headers.get("location"), url);
    assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI, `${name}: must not go on to ${cb.pathname}`);
    assert.equal(cb.searchParams.get("error"), "invalid_request", name);
    assert.equal(cb.searchParams.get("state"), "st-pkce");
    assert.equal(cb.searchParams.get("iss"), gh.url);
    assert.equal(cb.searchParams.get("code"), null);
  }
});

test("PKCE is required for public clients", async () => {
  const c = await admin.createClient({ token_endpoint_auth_method: "none" });
  const config = await oidcConfig(gh, c);
  const url = oc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: "openid", state: "st", nonce: "n" });
  const r = await send(new CookieJar(), url);
  assert.ok([302, 303].includes(r.status), `status ${r.status}`);
  const cb = new URL(r.headers.get("location"), url);
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI, `must not go on to ${cb.pathname}`);
  assert.equal(cb.searchParams.get("error"), "invalid_request");
});

test("PKCE downgrade is refused: verifier without challenge, challenge without verifier (RFC 9700 §2.1.1)", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const creds = { clientId: c.client_id, clientSecret: c.client_secret };
  // authorized without a challenge (allowed for confidential clients), redeemed with a verifier
  const noChallenge = oc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: "openid", state: "st", nonce: "n" });
  const f1 = await loginThroughForm({ authorizeUrl: noChallenge, username: user.username });
  if (f1.params.error) {
    // a server that requires PKCE from every client refuses up front; that is fine too
    assert.equal(f1.params.error, "invalid_request");
  } else {
    assert.ok(f1.params.code, JSON.stringify(f1.params));
    const r1 = await tokenRequest(gh, { grant_type: "authorization_code", code: f1.params.code, redirect_uri: REDIRECT_URI, code_verifier: oc.randomPKCECodeVerifier() }, creds);
    assert.equal(r1.status, 400, r1.text);
    assert.equal(r1.json?.error, "invalid_grant");
  }
  // authorized with a challenge, redeemed without the verifier
  const req = await authRequest(config);
  const f2 = await loginThroughForm({ authorizeUrl: req.url, username: user.username, jar: f1.jar });
  const r2 = await tokenRequest(gh, { grant_type: "authorization_code", code: f2.params.code, redirect_uri: REDIRECT_URI }, creds);
  assert.equal(r2.status, 400, r2.text);
  assert.equal(r2.json?.error, "invalid_grant");
});

test("redirect_uri mismatch and unknown client show an error page and never redirect", async () => {
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const base = await authRequest(config);
  const variants = {
    "unregistered redirect_uri": { redirect_uri: "https://evil.example/cb" },
    "prefix-extended redirect_uri": { redirect_uri: `${REDIRECT_URI}/extra` },
    "redirect_uri with added query": { redirect_uri: `${REDIRECT_URI}?x=1` },
    "unknown client": { client_id: "no-such-client" },
  };
  for (const [name, override] of Object.entries(variants)) {
    const url = new URL(base.url);
    for (const [k, v] of Object.entries(override)) url.searchParams.set(k, v);
    const r = await send(new CookieJar(), url);
    assert.equal(r.status, 400, `${name}: status ${r.status}`);
    assert.equal(r.headers.get("location"), null, `${name}: must not redirect`);
    assert.match(r.headers.get("content-type") ?? "", /text\/html/, name);
    await r.text();
  }
});

test("a scope the client is not allowed is redirected as invalid_scope", async () => {
  const c = await admin.createClient({ scope: "openid profile" });
  const config = await oidcConfig(gh, c);
  for (const scope of ["openid email", "openid address"]) {
    const req = await authRequest(config, { scope });
    const r = await send(new CookieJar(), req.url);
    assert.ok([302, 303].includes(r.status), `${scope}: status ${r.status}`);
    const cb = new URL(r.headers.get("location"), req.url);
    assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI, `${scope}: must not go on to ${cb.pathname}`);
    assert.equal(cb.searchParams.get("error"), "invalid_scope", scope);
    assert.equal(cb.searchParams.get("state"), req.state);
  }
});

// ----------------------------------------------------------------------------------------------
// Standard claims (OIDC Core §5.1, §5.4) and the claims parameter (§5.5)

test("unknown scopes are ignored, and each scope's standard claims reach openid-client", async () => {
  const user = await admin.createUser({
    given_name: "Alice", family_name: "Liddell", birthdate: "1852-05-04", zoneinfo: "Europe/London",
    phone_number: "+441865270000", phone_number_verified: true, address: { locality: "Oxford", country: "GB" },
  });
  const c = await admin.createClient({ scope: "openid profile email address phone offline_access" });
  const config = await oidcConfig(gh, c);
  const { tokens, claims } = await codeFlow(config, user, { scope: "openid profile email address phone foo" });
  assert.equal(tokens.scope, "openid profile email address phone", "foo is ignored, the rest granted");
  const info = await oc.fetchUserInfo(config, tokens.access_token, claims.sub);
  for (const got of [claims, info]) {
    assert.equal(got.given_name, "Alice");
    assert.equal(got.family_name, "Liddell");
    assert.equal(got.birthdate, "1852-05-04");
    assert.equal(got.zoneinfo, "Europe/London");
    assert.equal(got.phone_number, "+441865270000");
    assert.equal(got.phone_number_verified, true);
    assert.deepEqual(got.address, { locality: "Oxford", country: "GB" });
    assert.equal(got.preferred_username, user.username);
    assert.equal(got.email, user.email);
    assert.equal(got.middle_name, undefined, "a claim without a value is left out");
  }
  // The scope alone gives nothing but the subject.
  const bare = await codeFlow(config, user, { scope: "openid" });
  const bareInfo = await oc.fetchUserInfo(config, bare.tokens.access_token, bare.claims.sub);
  assert.deepEqual(Object.keys(bareInfo), ["sub"]);
  assert.equal(bare.claims.given_name, undefined);
});

test("the claims parameter asks for single claims per place, within the client's scopes", async () => {
  const user = await admin.createUser({ given_name: "Alice", phone_number: "+441865270000" });
  const c = await admin.createClient({ scope: "openid profile email phone offline_access" });
  const config = await oidcConfig(gh, c);
  const claimsParam = JSON.stringify({
    id_token: { email: { essential: true }, address: null },
    userinfo: { phone_number: null, given_name: null },
  });
  const { tokens, claims } = await codeFlow(config, user, { scope: "openid", extra: { claims: claimsParam } });
  assert.equal(claims.email, user.email);
  assert.equal(claims.address, undefined, "the client may not have the address scope");
  assert.equal(claims.phone_number, undefined, "asked for userinfo only");
  const info = await oc.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(info.phone_number, "+441865270000");
  assert.equal(info.given_name, "Alice");
  assert.equal(info.email, undefined, "asked for the ID token only");

  // A malformed claims parameter goes back to the client as invalid_request.
  const req = await authRequest(config, { extra: { claims: "[]" } });
  const r = await send(new CookieJar(), req.url);
  const cb = new URL(r.headers.get("location"), req.url);
  assert.equal(cb.searchParams.get("error"), "invalid_request");
  assert.equal(cb.searchParams.get("state"), req.state);
});

test("the admin API refuses a standard claim in the wrong form, naming it", async () => {
  const r = await admin.call("POST", "/admin/api/users", {
    username: `bad-${Date.now()}`, email: "bad@example.test", password: PASSWORD, phone_number: "555-0100",
  });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, "invalid_request");
  assert.match(r.json.error_description, /phone_number must be in E\.164 form/);
  const c = await admin.call("POST", "/admin/api/clients", { redirect_uris: [REDIRECT_URI], scope: "openid billing" });
  assert.equal(c.status, 400);
  assert.equal(c.json.error, "invalid_client_metadata");
});

test("response_type other than code is refused", async () => {
  const c = await admin.createClient();
  const config = await oidcConfig(gh, c);
  const base = await authRequest(config);
  for (const rt of ["token", "id_token", "code id_token"]) {
    const url = new URL(base.url);
    url.searchParams.set("response_type", rt);
    const r = await send(new CookieJar(), url);
    const loc = r.headers.get("location");
    if (loc) {
      const cb = new URL(loc, url);
      assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI, `${rt}: no login page`);
      assert.ok(!cb.hash.includes("access_token") && !cb.hash.includes("id_token"));
      assert.equal(cb.searchParams.get("error"), "unsupported_response_type", rt);
    } else {
      assert.equal(r.status, 400, rt);
    }
  }
});

// ----------------------------------------------------------------------------------------------
// Client lifecycle effects

test("a disabled client can do nothing", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ grant_types: ["authorization_code", "refresh_token", "client_credentials"] });
  const config = await oidcConfig(gh, c);
  const before = await codeFlow(config, user, { scope: "openid offline_access" });
  await admin.patchClient(c.client_id, { disabled: true });
  const cc = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(cc.status, 401, cc.text);
  assert.equal(cc.json?.error, "invalid_client");
  const rt = await tokenRequest(gh, { grant_type: "refresh_token", refresh_token: before.tokens.refresh_token }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(rt.status, 401, rt.text);
  assert.equal(rt.json?.error, "invalid_client");
  const req = await authRequest(config);
  const a = await send(before.jar, req.url);
  assert.ok(a.status >= 400 && a.status < 500, `authorize status ${a.status}`);
  assert.equal(a.headers.get("location"), null, "authorize must not redirect for a disabled client");
  assert.match(a.headers.get("content-type") ?? "", /text\/html/);
  const intro = await clientPost(gh, "/oauth2/introspect", { token: before.tokens.access_token }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(intro.status, 401);
});

test("secret rotation: the new secret works, the old one stops working", async () => {
  const c = await admin.createServiceClient();
  const ok = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(ok.status, 200, ok.text);
  const rotated = await admin.rotateSecret(c.client_id);
  assert.equal(rotated.client_id, c.client_id);
  assert.ok(rotated.client_secret && rotated.client_secret !== c.client_secret);
  const old = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: c.client_secret });
  assert.equal(old.status, 401, old.text);
  assert.equal(old.json?.error, "invalid_client");
  const fresh = await tokenRequest(gh, { grant_type: "client_credentials" }, { clientId: c.client_id, clientSecret: rotated.client_secret });
  assert.equal(fresh.status, 200, fresh.text);
});

// ----------------------------------------------------------------------------------------------
// https: __Host- cookies

test("over https the cookies are __Host-gh_csrf and __Host-gh_session (Secure, Path=/, no Domain)", async () => {
  const secure = await startGatehouse({ https: true, vars: { GATEHOUSE_ISSUER: "https://127.0.0.1:{port}" } });
  const savedCAs = tls.getCACertificates("default");
  // trust the harness's throwaway certificate in this process (global fetch and openid-client)
  tls.setDefaultCACertificates([...savedCAs, readFileSync(secure.certPath, "utf8")]);
  try {
    const sAdmin = adminApi(secure);
    const user = await sAdmin.createUser();
    const c = await sAdmin.createClient();
    const config = await oidcConfig(secure, c);
    assert.equal(config.serverMetadata().issuer, secure.url);
    const req = await authRequest(config);
    // The browser-binding (CSRF) cookie is set by the first authorize response.
    const first = await fetch(req.url, { redirect: "manual" });
    const csrf = first.headers.getSetCookie();
    const { jar, url, res, form } = await openLoginPage(req.url);
    assert.equal(res.status, 200);
    assert.ok(csrf.some((l) => l.startsWith("__Host-gh_csrf=")), `CSRF cookie: ${csrf}`);
    assert.ok(!csrf.some((l) => l.startsWith("gh_csrf=")), "no unprefixed CSRF cookie over https");
    const post = await postForm(jar, new URL(form.action, url), { ...form.fields, username: user.username, password: user.password });
    assert.equal(post.status, 303);
    const set = post.headers.getSetCookie();
    const session = set.find((l) => l.startsWith("__Host-gh_session="));
    assert.ok(session, `session cookie: ${set}`);
    assert.ok(!set.some((l) => l.startsWith("gh_session=")), "no unprefixed session cookie over https");
    for (const line of [...csrf.filter((l) => l.startsWith("__Host-")), session]) {
      assert.match(line, /;\s*Secure/i, line);
      assert.match(line, /;\s*Path=\/(;|$)/i, line);
      assert.doesNotMatch(line, /;\s*Domain=/i, line);
    }
    assert.match(session, /;\s*HttpOnly/i);
    assert.match(session, /;\s*SameSite=Lax/i);
    // and the flow completes with the https issuer
    const flow = await loginThroughForm({ authorizeUrl: new URL(post.headers.get("location"), url), jar, username: user.username, redirectUri: REDIRECT_URI });
    assert.equal(flow.params.iss, secure.url);
    const tokens = await oc.authorizationCodeGrant(config, flow.callback, {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce,
    });
    assert.equal(tokens.claims().iss, secure.url);
  } finally {
    tls.setDefaultCACertificates(savedCAs);
    await secure.stop();
  }
});
