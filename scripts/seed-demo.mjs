#!/usr/bin/env node
// Seeds a local Gatehouse with a demo user and the demo app's client, idempotently.
// Usage: node scripts/seed-demo.mjs [baseUrl] [demoAppPort]   (default http://127.0.0.1:8787, 8788)
//
// The admin token is read from .dev.vars (GATEHOUSE_ADMIN_TOKEN="..."), or from the
// GATEHOUSE_ADMIN_TOKEN environment variable if set.
//
// Demo user:   demo / demo-password-change-me   (a local demo only; never seed this elsewhere)
// Demo client: demo-rp, the public client (PKCE) of the demo app (`scripts/demo-rp.mjs`), with its
//              redirect URIs on http://127.0.0.1:<demoAppPort>/.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const base = (process.argv[2] ?? process.env.GATEHOUSE_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");

import { demoRpClient, DEMO_RP_PORT } from "./demo-rp.mjs";

const DEMO_USER = {
  username: "demo",
  email: "demo@example.test",
  email_verified: true,
  name: "Demo User",
  given_name: "Demo",
  family_name: "User",
  locale: "en-US",
  password: "demo-password-change-me",
};
const demoPort = Number(process.argv[3] ?? DEMO_RP_PORT);

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

// --- the demo app's client --------------------------------------------------------------------
const client = demoRpClient(demoPort);
const existing = await api("GET", `/admin/api/clients/${client.client_id}`);
if (existing.status === 200) {
  // Kept in step with this script (a port given this time, a scope added since).
  const { client_id: _, ...metadata } = client;
  const p = await api("PATCH", `/admin/api/clients/${client.client_id}`, metadata);
  if (p.status !== 200) fail("updating the demo client", p);
  console.log(`seed-demo: client "${client.client_id}" already exists; brought up to date`);
} else if (existing.status === 404) {
  const c = await api("POST", "/admin/api/clients", client);
  if (c.status !== 201) fail("creating the demo client", c);
  console.log(`seed-demo: created client "${c.json.client_id}"`);
} else {
  fail("reading the demo client", existing);
}
