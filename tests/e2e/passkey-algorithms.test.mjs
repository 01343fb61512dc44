// Passkeys of every algorithm Gatehouse accepts, checked by workerd's WebCrypto: a software
// authenticator written here with node:crypto (independent of the Rust one in the native tests)
// registers an ES256, an Ed25519 (EdDSA) and an RS256 credential from the account page over
// plain HTTP, then signs in with each without a username. Chromium's virtual authenticator
// only makes ES256 keys; this is what exercises the other two inside workerd.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { startGatehouse } from "./harness.mjs";
import {
  adminApi, CookieJar, send, postForm, parseForms, loginThroughForm, openLoginPage, pkceAuthorizeUrl,
  isRedirect, REDIRECT_URI,
} from "./helpers.mjs";

let gh, admin;

before(async () => {
  gh = await startGatehouse();
  admin = adminApi(gh);
});

after(async () => {
  await gh?.stop();
});

// ---------------------------------------------------------------------------------------------
// A minimal CBOR encoder (RFC 8949): unsigned and negative integers, byte and text strings,
// arrays, and maps (a JS Map for integer keys, an object for text keys). Enough for an
// attestation object and COSE keys.

function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = (major << 5) | 25; b.writeUInt16BE(n, 1); return b; }
  const b = Buffer.alloc(5); b[0] = (major << 5) | 26; b.writeUInt32BE(n, 1); return b;
}

function cbor(v) {
  if (typeof v === "number") return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === "string") { const s = Buffer.from(v, "utf8"); return Buffer.concat([head(3, s.length), s]); }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cbor)]);
  const entries = v instanceof Map ? [...v] : Object.entries(v);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, x]) => [cbor(k), cbor(x)])]);
}

test("cbor: RFC 8949 appendix A examples check this file's encoder", () => {
  assert.equal(cbor(0).toString("hex"), "00");
  assert.equal(cbor(24).toString("hex"), "1818");
  assert.equal(cbor(1000).toString("hex"), "1903e8");
  assert.equal(cbor(-1).toString("hex"), "20");
  assert.equal(cbor(-257).toString("hex"), "390100");
  assert.equal(cbor("IETF").toString("hex"), "6449455446");
  assert.equal(cbor(Buffer.from([1, 2, 3, 4])).toString("hex"), "4401020304");
  assert.equal(cbor([1, [2, 3]]).toString("hex"), "8201820203");
  assert.equal(cbor({ a: 1, b: [2, 3] }).toString("hex"), "a26161016162820203");
  assert.equal(cbor(new Map([[1, 2], [3, 4]])).toString("hex"), "a201020304");
});

// ---------------------------------------------------------------------------------------------
// The software authenticator

const b64u = (b) => Buffer.from(b).toString("base64url");
const sha256 = (b) => createHash("sha256").update(b).digest();

/** A credential of `alg` (COSE -7, -8 or -257): its COSE public key and how it signs. */
function makeKey(alg) {
  if (alg === -7) {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = publicKey.export({ format: "jwk" });
    const cose = new Map([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x, "base64url")], [-3, Buffer.from(jwk.y, "base64url")]]);
    return { cose, sign: (data) => sign("sha256", data, { key: privateKey, dsaEncoding: "der" }) };
  }
  if (alg === -8) {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const jwk = publicKey.export({ format: "jwk" });
    const cose = new Map([[1, 1], [3, -8], [-1, 6], [-2, Buffer.from(jwk.x, "base64url")]]);
    return { cose, sign: (data) => sign(null, data, privateKey) };
  }
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  const cose = new Map([[1, 3], [3, -257], [-1, Buffer.from(jwk.n, "base64url")], [-2, Buffer.from(jwk.e, "base64url")]]);
  return { cose, sign: (data) => sign("sha256", data, privateKey) };
}

const UP = 0x01, UV = 0x04, AT = 0x40;

class SoftAuthenticator {
  constructor(alg) {
    this.key = makeKey(alg);
    this.id = randomBytes(16);
    this.count = 0;
  }

  authData(rpId, attested) {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(++this.count);
    const parts = [sha256(rpId), Buffer.from([UP | UV | (attested ? AT : 0)]), count];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.id.length);
      parts.push(Buffer.alloc(16), len, this.id, cbor(this.key.cose));
    }
    return Buffer.concat(parts);
  }

  clientData(type, challenge, origin) {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  /** What the page script posts after `navigator.credentials.create(options)`. */
  register(options, origin) {
    this.userHandle = options.user.id;
    const clientDataJSON = this.clientData("webauthn.create", options.challenge, origin);
    const attestationObject = cbor({ fmt: "none", attStmt: {}, authData: this.authData(options.rp.id, true) });
    return JSON.stringify({
      id: b64u(this.id), rawId: b64u(this.id), type: "public-key",
      response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ["usb"] },
    });
  }

  /** What the page script posts after `navigator.credentials.get(options)`. */
  assert(options, origin) {
    const clientDataJSON = this.clientData("webauthn.get", options.challenge, origin);
    const authenticatorData = this.authData(options.rpId, false);
    const signature = this.key.sign(Buffer.concat([authenticatorData, sha256(clientDataJSON)]));
    return JSON.stringify({
      id: b64u(this.id), rawId: b64u(this.id), type: "public-key",
      response: {
        clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authenticatorData),
        signature: b64u(signature), userHandle: this.userHandle,
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------

const formWith = (html, id) => {
  const form = parseForms(html).find((f) => f.attrs.id === id);
  assert.ok(form, `no form #${id}`);
  return form;
};

async function postJson(jar, path, fields) {
  const res = await postForm(jar, `${gh.url}${path}`, fields);
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text).publicKey;
}

/** Follows redirects from `res` until the client's redirect URI; returns that URL. */
async function toCallback(jar, res, from) {
  let url = new URL(from);
  for (let i = 0; i < 10 && isRedirect(res); i++) {
    url = new URL(res.headers.get("location"), url);
    if (url.href.startsWith(REDIRECT_URI)) return url;
    res = await send(jar, url, { headers: { accept: "text/html" } });
  }
  throw new Error(`no redirect to the client: ${res.status} ${url} ${(await res.text()).slice(0, 300)}`);
}

for (const [alg, name] of [[-7, "ES256"], [-8, "EdDSA (Ed25519)"], [-257, "RS256"]]) {
  test(`an ${name} passkey registers on the account page and signs in without a username (workerd WebCrypto)`, async () => {
    const user = await admin.createUser();
    const client = await admin.createClient();
    const authenticator = new SoftAuthenticator(alg);

    // Signed in to the account page with the password.
    const jar = new CookieJar();
    await loginThroughForm({ authorizeUrl: `${gh.url}/account`, username: user.username, jar, redirectUri: `${gh.url}/account` });
    const account = await (await send(jar, `${gh.url}/account`)).text();
    const { csrf } = formWith(account, "passkey-add-form").fields;
    const creation = await postJson(jar, "/account/passkeys/options", { csrf });
    assert.ok(creation.pubKeyCredParams.some((p) => p.alg === alg), "the algorithm is offered");
    const added = await postForm(jar, `${gh.url}/account/passkeys`, {
      csrf, name: name, credential: authenticator.register(creation, gh.url),
    });
    const addedHtml = await added.text();
    assert.equal(added.status, 200, addedHtml.slice(0, 500));
    assert.match(addedHtml, /Passkey added/);
    const factors = await admin.call("GET", `/admin/api/users/${user.id}/factors`);
    assert.deepEqual(factors.json.passkeys.map((p) => p.alg), [alg]);

    // A new browser: the passkey alone.
    const login = await openLoginPage(pkceAuthorizeUrl(gh, client.client_id));
    const fields = formWith(login.html, "passkey-form").fields;
    const request = await postJson(login.jar, "/oauth2/passkey/options", { req: fields.req, csrf: fields.csrf });
    assert.equal(request.userVerification, "required");
    const signedIn = await postForm(login.jar, `${gh.url}/oauth2/passkey`, {
      req: fields.req, csrf: fields.csrf, credential: authenticator.assert(request, gh.url),
    });
    assert.equal(signedIn.status, 303, (await signedIn.clone().text()).slice(0, 500));
    const callback = await toCallback(login.jar, signedIn, `${gh.url}/oauth2/passkey`);
    assert.ok(callback.searchParams.get("code"), callback.href);

    // An assertion over the spent challenge is refused in a new flow.
    const again = await openLoginPage(pkceAuthorizeUrl(gh, client.client_id));
    const f2 = formWith(again.html, "passkey-form").fields;
    await postJson(again.jar, "/oauth2/passkey/options", { req: f2.req, csrf: f2.csrf });
    const replay = await postForm(again.jar, `${gh.url}/oauth2/passkey`, {
      req: f2.req, csrf: f2.csrf, credential: authenticator.assert(request, gh.url),
    });
    assert.equal(replay.status, 401);

    // A signature by another key of the same algorithm, under this credential's id, is refused.
    const forger = new SoftAuthenticator(alg);
    forger.id = authenticator.id;
    forger.userHandle = authenticator.userHandle;
    forger.count = authenticator.count + 10;
    const third = await openLoginPage(pkceAuthorizeUrl(gh, client.client_id));
    const f3 = formWith(third.html, "passkey-form").fields;
    const o3 = await postJson(third.jar, "/oauth2/passkey/options", { req: f3.req, csrf: f3.csrf });
    const forged = await postForm(third.jar, `${gh.url}/oauth2/passkey`, {
      req: f3.req, csrf: f3.csrf, credential: forger.assert(o3, gh.url),
    });
    assert.equal(forged.status, 401);
    const [failed] = await gh.d1(
      `SELECT json_extract(detail, '$.reason') AS reason FROM events WHERE kind = 'login_failed' AND user_id = '${user.id}' ORDER BY created_at DESC, rowid DESC LIMIT 1`,
    );
    assert.equal(failed.reason, "bad_signature");
  });
}
