#!/usr/bin/env node
// A small relying party for the local demo: a page on http://127.0.0.1:8788 that signs in through
// Gatehouse with openid-client (code flow, PKCE, a public client), then shows the ID token's
// claims, the userinfo answer, and a "Sign out" that ends the SSO session (RP-Initiated Logout).
// `scripts/dev.sh` starts it; by hand: node scripts/demo-rp.mjs [issuer] [port]
//
// Sessions live in this process's memory (a random cookie names one): a demo, not a template for
// production (no persistence, no CSRF protection beyond state, PKCE and nonce, plain http on
// loopback only).
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import * as oc from "openid-client";

export const DEMO_RP_CLIENT_ID = "demo-rp";
export const DEMO_RP_PORT = 8788;

/** The client the demo uses, as the admin API creates it (`scripts/seed-demo.mjs`). */
export function demoRpClient(port = DEMO_RP_PORT) {
  return {
    client_id: DEMO_RP_CLIENT_ID,
    client_name: "Gatehouse demo app",
    redirect_uris: [`http://127.0.0.1:${port}/callback`],
    post_logout_redirect_uris: [`http://127.0.0.1:${port}/`],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "none",
    scope: "openid profile email address phone",
    id_token_signed_response_alg: "RS256",
    first_party: true,
  };
}

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function page(body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Gatehouse demo app</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:1rem;overflow:auto}a.button,button{display:inline-block;padding:.6rem 1.2rem;font-size:1rem}</style>
</head><body><h1>Gatehouse demo app</h1>${body}</body></html>`;
}

/** Starts the demo relying party; resolves to { url, close }. */
export async function startDemoRp({ issuer, port = DEMO_RP_PORT, host = "127.0.0.1" } = {}) {
  const base = `http://${host}:${port}`;
  const config = await oc.discovery(new URL(issuer), DEMO_RP_CLIENT_ID, undefined, oc.None(), {
    execute: [oc.allowInsecureRequests],
  });
  const sessions = new Map(); // cookie value -> { pending?, claims?, userinfo?, idToken? }
  const MAX_SESSIONS = 1000;

  const sessionOf = (req, res) => {
    const sid = /(?:^|;\s*)demo_rp=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? "")?.[1];
    if (sid && sessions.has(sid)) return sessions.get(sid);
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
    const fresh = randomBytes(18).toString("base64url");
    const s = {};
    sessions.set(fresh, s);
    res.setHeader("set-cookie", `demo_rp=${fresh}; Path=/; HttpOnly; SameSite=Lax`);
    return s;
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, base);
    const send = (status, html) => {
      res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(page(html));
    };
    try {
      const s = sessionOf(req, res);
      if (url.pathname === "/" && s.claims) {
        send(200, `<p id="signed-in">Signed in as <strong>${escape(s.claims.preferred_username ?? s.claims.sub)}</strong>.</p>
<h2>ID token claims</h2><pre id="id-token-claims">${escape(JSON.stringify(s.claims, null, 2))}</pre>
<h2>Userinfo</h2><pre id="userinfo">${escape(JSON.stringify(s.userinfo, null, 2))}</pre>
<p><a class="button" id="sign-out" href="/logout">Sign out</a> (ends the session at Gatehouse too)</p>`);
      } else if (url.pathname === "/") {
        send(200, `<p id="signed-out">You are not signed in.</p>
<p><a class="button" id="sign-in" href="/login">Sign in with Gatehouse</a></p>
<p>Demo user: <code>demo</code> / <code>demo-password-change-me</code></p>`);
      } else if (url.pathname === "/login") {
        const verifier = oc.randomPKCECodeVerifier();
        s.pending = { verifier, state: oc.randomState(), nonce: oc.randomNonce() };
        const to = oc.buildAuthorizationUrl(config, {
          redirect_uri: `${base}/callback`,
          scope: "openid profile email address phone",
          code_challenge: await oc.calculatePKCECodeChallenge(verifier),
          code_challenge_method: "S256",
          state: s.pending.state,
          nonce: s.pending.nonce,
        });
        res.writeHead(302, { location: to.href }).end();
      } else if (url.pathname === "/callback") {
        if (!s.pending) return send(400, `<p>No sign-in was started here. <a href="/">Start again</a>.</p>`);
        const { verifier, state, nonce } = s.pending;
        delete s.pending;
        if (url.searchParams.has("error")) {
          return send(400, `<p>Gatehouse said: <code>${escape(url.searchParams.get("error"))}</code>. <a href="/">Start again</a>.</p>`);
        }
        const tokens = await oc.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce,
        });
        s.claims = tokens.claims();
        s.idToken = tokens.id_token;
        s.userinfo = await oc.fetchUserInfo(config, tokens.access_token, s.claims.sub);
        res.writeHead(302, { location: "/" }).end();
      } else if (url.pathname === "/logout") {
        const hint = s.idToken;
        for (const k of Object.keys(s)) delete s[k];
        const to = hint
          ? oc.buildEndSessionUrl(config, { id_token_hint: hint, post_logout_redirect_uri: `${base}/` })
          : new URL("/", base);
        res.writeHead(302, { location: to.href }).end();
      } else {
        send(404, `<p>Not here. <a href="/">Home</a>.</p>`);
      }
    } catch (e) {
      send(500, `<p>The sign-in failed: ${escape(e.message)}. <a href="/">Start again</a>.</p>`);
    }
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(port, host, ok));
  return { url: `${base}/`, close: () => new Promise((ok) => server.close(ok)) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const issuer = process.argv[2] ?? "http://127.0.0.1:8787";
  const port = Number(process.argv[3] ?? DEMO_RP_PORT);
  const rp = await startDemoRp({ issuer, port });
  console.log(`demo-rp: open ${rp.url} and sign in as demo / demo-password-change-me`);
}
