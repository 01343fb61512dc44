// A second relying-party library, oauth4webapi, against a real `wrangler dev`: every check is the
// library's own (discovery and its issuer, RFC 9207 `iss` in the authorization response, the ID
// token's claims and nonce, the userinfo subject, the RFC 9068 access token as a resource server
// validates it), with the real login form between.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as o from "oauth4webapi";
import { startGatehouse } from "./harness.mjs";
import { REDIRECT_URI, adminApi, loginThroughForm } from "./helpers.mjs";

let gh, admin, as;
const insecure = { [o.allowInsecureRequests]: true }; // the local issuer is http://127.0.0.1

before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
  const issuer = new URL(gh.url);
  as = await o.processDiscoveryResponse(issuer, await o.discoveryRequest(issuer, insecure));
});
after(async () => { await gh?.stop(); });

/** Through the login form with PKCE, state and nonce; the validated callback parameters. */
async function authorize(client, user, { scope = "openid profile email offline_access" } = {}) {
  const verifier = o.generateRandomCodeVerifier();
  const state = o.generateRandomState();
  const nonce = o.generateRandomNonce();
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: client.client_id, redirect_uri: REDIRECT_URI, response_type: "code", scope, state, nonce,
    code_challenge: await o.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
  }).toString();
  const flow = await loginThroughForm({ authorizeUrl: url, username: user.username, password: user.password });
  return { callback: flow.callback, verifier, state, nonce };
}

test("discovery: the issuer matches and RFC 9207 iss is advertised", () => {
  assert.equal(as.issuer, gh.url);
  assert.equal(as.authorization_response_iss_parameter_supported, true);
  assert.equal(as.claims_parameter_supported, true);
});

test("confidential client: code + PKCE, ID token, userinfo, the access token as a resource server sees it, refresh", async () => {
  const user = await admin.createUser({ given_name: "Ada" });
  const c = await admin.createClient({ scope: "openid profile email offline_access" });
  const client = { client_id: c.client_id, id_token_signed_response_alg: "RS256" };
  const auth = o.ClientSecretBasic(c.client_secret);
  const { callback, verifier, state, nonce } = await authorize(client, user);

  // RFC 9207: the library checks `iss` in the response against the discovered issuer.
  const params = o.validateAuthResponse(as, client, callback, state);
  const forged = new URL(callback);
  forged.searchParams.set("iss", "https://evil.example");
  assert.throws(() => o.validateAuthResponse(as, client, forged, state), /iss/);

  const response = await o.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT_URI, verifier, insecure);
  const tokens = await o.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
  const claims = o.getValidatedIdTokenClaims(tokens);
  assert.equal(claims.iss, gh.url);
  assert.equal(claims.aud, c.client_id);
  assert.equal(claims.nonce, nonce);
  assert.equal(claims.sub, user.id);
  assert.equal(claims.given_name, "Ada");
  assert.ok(tokens.refresh_token, "offline_access gives a refresh token");

  const info = await o.processUserInfoResponse(
    as, client, claims.sub, await o.userInfoRequest(as, client, tokens.access_token, insecure),
  );
  assert.equal(info.email, user.email);
  assert.equal(info.preferred_username, user.username);

  // RFC 9068: a resource server validating the access token with the library.
  const at = await o.validateJwtAccessToken(
    as,
    new Request("https://api.example/x", { headers: { authorization: `Bearer ${tokens.access_token}` } }),
    c.client_id,
    insecure,
  );
  assert.equal(at.sub, user.id);
  assert.equal(at.client_id, c.client_id);

  const refreshed = await o.processRefreshTokenResponse(
    as, client, await o.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure),
  );
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "rotated");
  assert.equal(o.getValidatedIdTokenClaims(refreshed).sub, user.id);
  // The rotated-away token is refused, as the library reports it.
  await assert.rejects(
    o.processRefreshTokenResponse(as, client, await o.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure)),
    (e) => e instanceof o.ResponseBodyError && e.error === "invalid_grant",
  );
});

test("public client (token_endpoint_auth_method none) with PKCE", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ token_endpoint_auth_method: "none", scope: "openid profile" });
  const client = { client_id: c.client_id, token_endpoint_auth_method: "none" };
  const { callback, verifier, state, nonce } = await authorize(client, user, { scope: "openid profile" });
  const params = o.validateAuthResponse(as, client, callback, state);
  const tokens = await o.processAuthorizationCodeResponse(
    as, client,
    await o.authorizationCodeGrantRequest(as, client, o.None(), params, REDIRECT_URI, verifier, insecure),
    { expectedNonce: nonce, requireIdToken: true },
  );
  assert.equal(o.getValidatedIdTokenClaims(tokens).sub, user.id);
  // Without the verifier the library hears invalid_grant.
  const again = await authorize(client, user, { scope: "openid profile" });
  const p2 = o.validateAuthResponse(as, client, again.callback, again.state);
  await assert.rejects(
    o.processAuthorizationCodeResponse(
      as, client,
      await o.authorizationCodeGrantRequest(as, client, o.None(), p2, REDIRECT_URI, o.generateRandomCodeVerifier(), insecure),
    ),
    (e) => e instanceof o.ResponseBodyError && e.error === "invalid_grant",
  );
});

test("an ES256 client's ID token and access token pass the library's checks", async () => {
  const user = await admin.createUser();
  const c = await admin.createClient({ id_token_signed_response_alg: "ES256" });
  const client = { client_id: c.client_id, id_token_signed_response_alg: "ES256" };
  const { callback, verifier, state, nonce } = await authorize(client, user);
  const params = o.validateAuthResponse(as, client, callback, state);
  const tokens = await o.processAuthorizationCodeResponse(
    as, client,
    await o.authorizationCodeGrantRequest(as, client, o.ClientSecretBasic(c.client_secret), params, REDIRECT_URI, verifier, insecure),
    { expectedNonce: nonce },
  );
  assert.equal(o.getValidatedIdTokenClaims(tokens).sub, user.id);
  const at = await o.validateJwtAccessToken(
    as,
    new Request("https://api.example/x", { headers: { authorization: `Bearer ${tokens.access_token}` } }),
    c.client_id,
    { ...insecure, signingAlgorithms: ["ES256"] },
  );
  assert.equal(at.sub, user.id);
});
