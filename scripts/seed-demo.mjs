#!/usr/bin/env node
// Seeds a local Gatehouse with a demo user and a demo client, idempotently, and prints how to
// log in.  Usage: node scripts/seed-demo.mjs [baseUrl]   (default http://127.0.0.1:8787)
//
// The admin token is read from .dev.vars (GATEHOUSE_ADMIN_TOKEN="..."), or from the
// GATEHOUSE_ADMIN_TOKEN environment variable if set.
//
// Demo user:   demo / demo-password-change-me   (a local demo only; never seed this elsewhere)
// Demo client: demo-client (confidential, first-party, client_secret_basic), redirect_uri
//              http://127.0.0.1:8788/callback. Its secret is printed once, when it is created;
//              rotate it with POST /admin/api/clients/<id>/secret if you lose it.
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const base = (process.argv[2] ?? process.env.GATEHOUSE_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");

const DEMO_USER = {
  username: "demo",
  email: "demo@example.test",
  email_verified: true,
  name: "Demo User",
  password: "demo-password-change-me",
};
const DEMO_CLIENT_ID = "demo-client";
const DEMO_REDIRECT = "http://127.0.0.1:8788/callback";
const DEMO_CLIENT = {
  client_id: DEMO_CLIENT_ID, // used if the server accepts an explicit client_id
  client_name: "Gatehouse demo client",
  redirect_uris: [DEMO_REDIRECT],
  post_logout_redirect_uris: ["http://127.0.0.1:8788/"],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
  scope: "openid profile email offline_access",
  id_token_signed_response_alg: "RS256",
  first_party: true,
};

function readDevVars() {
  const vars = {};
  let text;
  try {
    text = readFileSync(join(ROOT, ".dev.vars"), "utf8");
  } catch {
    return vars;
  }
  for (const line of text.split(/\r?\n/)) {
    const m = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/);
    if (!m || line.trim().startsWith("#")) continue;
    let v = m[2];
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) {
      try { v = JSON.parse(v); } catch { v = v.slice(1, -1); }
    } else if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) {
      v = v.slice(1, -1);
    }
    vars[m[1]] = v;
  }
  return vars;
}

const token = process.env.GATEHOUSE_ADMIN_TOKEN || readDevVars().GATEHOUSE_ADMIN_TOKEN;
if (!token) {
  console.error("seed-demo: no GATEHOUSE_ADMIN_TOKEN in .dev.vars or the environment");
  process.exit(1);
}

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: "application/json",
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  }).catch((e) => {
    console.error(`seed-demo: cannot reach Gatehouse at ${base}: ${e.cause?.code ?? e.message}`);
    process.exit(1);
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch {}
  return { status: res.status, json, text };
}

function fail(what, r) {
  console.error(`seed-demo: ${what} failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  process.exit(1);
}

// --- user -------------------------------------------------------------------------------------
const u = await api("POST", "/admin/api/users", DEMO_USER);
if (u.status === 201) {
  console.log(`seed-demo: created user "${DEMO_USER.username}" (id ${u.json?.id})`);
} else if (u.status === 409) {
  console.log(`seed-demo: user "${DEMO_USER.username}" already exists; left as is`);
} else {
  fail("creating the demo user", u);
}

// --- client -----------------------------------------------------------------------------------
let clientId;
let clientSecret;
const existing = await api("GET", `/admin/api/clients/${DEMO_CLIENT_ID}`);
if (existing.status === 200) {
  clientId = DEMO_CLIENT_ID;
  console.log(`seed-demo: client "${clientId}" already exists; its secret was printed when it was created`);
} else {
  // A server that assigns its own ids ignores client_id; find an earlier demo client by name
  // first (if the server can list clients) so that reruns do not pile up clients.
  const list = await api("GET", "/admin/api/clients");
  const earlier = list.status === 200 && Array.isArray(list.json?.clients)
    ? list.json.clients.find((c) => c.client_name === DEMO_CLIENT.client_name)
    : undefined;
  if (earlier) {
    clientId = earlier.client_id;
    console.log(`seed-demo: client "${DEMO_CLIENT.client_name}" already exists as ${clientId}; its secret was printed when it was created`);
  } else {
    const c = await api("POST", "/admin/api/clients", DEMO_CLIENT);
    if (c.status === 409) {
      clientId = DEMO_CLIENT_ID;
      console.log(`seed-demo: client "${clientId}" already exists`);
    } else if (c.status === 201) {
      clientId = c.json.client_id;
      clientSecret = c.json.client_secret;
      console.log(`seed-demo: created client ${clientId}${clientId === DEMO_CLIENT_ID ? "" : " (the server assigned the id)"}`);
    } else {
      fail("creating the demo client", c);
    }
  }
}

// --- how to log in ----------------------------------------------------------------------------
const verifier = randomBytes(32).toString("base64url");
const challenge = createHash("sha256").update(verifier).digest("base64url");
const state = randomBytes(12).toString("base64url");
const nonce = randomBytes(12).toString("base64url");
const authorize = new URL(`${base}/oauth2/authorize`);
for (const [k, v] of Object.entries({
  response_type: "code",
  client_id: clientId,
  redirect_uri: DEMO_REDIRECT,
  scope: "openid profile email",
  state,
  nonce,
  code_challenge: challenge,
  code_challenge_method: "S256",
})) authorize.searchParams.set(k, v);

const secretShown = clientSecret ?? "<the secret printed when the client was created>";
console.log(`
Gatehouse demo
  issuer:         ${base}
  discovery:      ${base}/.well-known/openid-configuration
  user:           ${DEMO_USER.username} / ${DEMO_USER.password}   (local demo only)
  client_id:      ${clientId}
  client_secret:  ${clientSecret ? `${clientSecret}   (shown once; store it now)` : secretShown}
  redirect_uri:   ${DEMO_REDIRECT}   (nothing needs to listen there)

1. Open this URL in a browser and log in as ${DEMO_USER.username}:
   ${authorize.href}

2. The browser ends on ${DEMO_REDIRECT}?code=...&state=${state}&iss=... (a connection
   error page is fine). Copy the code and exchange it within a minute:

   curl -s -u '${clientId}:${secretShown}' \\
     -d grant_type=authorization_code -d code=PASTE_CODE_HERE \\
     --data-urlencode 'redirect_uri=${DEMO_REDIRECT}' \\
     -d code_verifier=${verifier} \\
     ${base}/oauth2/token

   (PKCE code_verifier for this URL: ${verifier})
`);
