// The retention job (Cron Trigger -> src/scheduled.rs -> store::retention) under
// `wrangler dev --test-scheduled`: dead rows seeded in the local D1 go, and what a real login
// made stays usable (security review finding "storage exhaustion").
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oc from "openid-client";
import { startGatehouse, makeSecrets } from "./harness.mjs";
import { adminApi, oidcConfig, codeFlow } from "./helpers.mjs";

// As in wrangler.toml; `wrangler dev` never fires it by itself.
const CRON = "*/15 * * * *";
const DAY = 86_400;

let gh, admin;
// A retention period other than the default shows the handler reads the setting.
before(async () => {
  gh = await startGatehouse({ testScheduled: true, vars: { GATEHOUSE_EVENT_RETENTION_DAYS: "30" } });
  admin = adminApi(gh);
});
after(async () => { await gh?.stop(); });

/** Fires the Cron Trigger on `g` and returns the job's log line. */
async function runCron(g) {
  const seen = g.logs().length;
  const r = await fetch(`${g.url}/__scheduled?cron=${encodeURIComponent(CRON)}`);
  assert.equal(r.status, 200, await r.text());
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = g.logs().slice(seen).match(/retention: [^\n]*/)?.[0];
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no retention log line:\n${g.logs().slice(seen)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

const count = async (sql) => (await gh.d1(sql))[0].n;

test("the Cron Trigger deletes dead rows of every table and keeps a live login usable", async () => {
  const user = await admin.createUser();
  const client = await admin.createClient();
  const config = await oidcConfig(gh, client);
  const { tokens } = await codeFlow(config, user, { scope: "openid offline_access" });
  assert.ok(tokens.refresh_token);

  const now = Math.floor(Date.now() / 1000);
  const dead = now - 60;
  const u = user.id;
  await gh.d1(`
    INSERT INTO auth_requests (id, client_id, params, created_at, expires_at) VALUES ('e2e_ar', 'c', '{}', 0, ${dead});
    INSERT INTO grants (id, client_id, user_id, scope, created_at, expires_at) VALUES ('e2e_g', 'c', '${u}', 'openid', 0, ${dead});
    INSERT INTO tokens (token_hash, kind, grant_id, client_id, user_id, scope, created_at, expires_at, rotated_at)
      VALUES ('e2e_rt', 'refresh', 'e2e_g', 'c', '${u}', 'openid', 0, ${dead}, 1);
    INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, created_at, expires_at, used_at)
      VALUES ('e2e_code', 'e2e_g', 'c', 'https://rp/cb', 0, ${dead}, 1);
    INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, ended_at)
      VALUES ('e2e_s_ended', '${u}', 0, 0, ${now + 3600}, ${dead}), ('e2e_s_expired', '${u}', 0, 0, ${dead}, NULL);
    INSERT INTO apps (id, name, host, path_prefix, origin, created_at, updated_at)
      VALUES ('e2e_app', 'Wiki', 'wiki.e2e.test', '/', 'http://127.0.0.1:9', 0, 0);
    INSERT INTO app_sessions (id_hash, app_id, user_id, sso_session_hash, created_at, expires_at)
      VALUES ('e2e_a', 'e2e_app', '${u}', 'e2e_s_ended', 0, ${now + 3600});
    INSERT INTO gateway_codes (code_hash, app_id, user_id, sso_session_hash, return_to, created_at, expires_at)
      VALUES ('e2e_gc', 'e2e_app', '${u}', 'e2e_s_ended', '/', 0, ${dead});
    INSERT INTO events (id, kind, created_at) VALUES ('e2e_e_old', 'login', ${now - 31 * DAY}), ('e2e_e_kept', 'login', ${now - 29 * DAY});
    INSERT INTO totp_devices (id, user_id, name, secret_sealed, created_at) VALUES ('e2e_t', '${u}', 'a', 's', ${now - 2 * DAY});
    INSERT INTO email_tokens (id, kind, secret_hash, user_id, email, created_at, expires_at)
      VALUES ('e2e_et', 'reset', 'h', '${u}', 'a@example.test', 0, ${dead});
    INSERT INTO webauthn_challenges (owner, ceremony, challenge, user_id, expires_at)
      VALUES ('e2e_wc', 'sign_in', 'c', NULL, ${dead});
  `);
  const liveEvents = await count("SELECT COUNT(*) AS n FROM events WHERE id NOT LIKE 'e2e_%'");
  assert.ok(liveEvents > 0, "the login recorded events");

  const line = await runCron(gh);
  assert.equal(
    line,
    "retention: deleted auth_requests=1 authorization_codes=1 gateway_codes=1 tokens=1 grants=1 " +
      "app_sessions=1 sessions=2 totp_devices=1 email_tokens=1 webauthn_challenges=1 events=1",
  );
  // One query: each `wrangler d1 execute` takes seconds.
  const [left] = await gh.d1(`SELECT
    (SELECT COUNT(*) FROM auth_requests WHERE id LIKE 'e2e_%') AS auth_requests,
    (SELECT COUNT(*) FROM grants WHERE id LIKE 'e2e_%') AS grants,
    (SELECT COUNT(*) FROM tokens WHERE token_hash LIKE 'e2e_%') AS tokens,
    (SELECT COUNT(*) FROM authorization_codes WHERE code_hash LIKE 'e2e_%') AS authorization_codes,
    (SELECT COUNT(*) FROM sessions WHERE id_hash LIKE 'e2e_%') AS sessions,
    (SELECT COUNT(*) FROM app_sessions WHERE id_hash LIKE 'e2e_%') AS app_sessions,
    (SELECT COUNT(*) FROM gateway_codes WHERE code_hash LIKE 'e2e_%') AS gateway_codes,
    (SELECT COUNT(*) FROM webauthn_challenges WHERE owner LIKE 'e2e_%') AS webauthn_challenges,
    (SELECT group_concat(id) FROM events WHERE id LIKE 'e2e_%') AS seeded_events,
    (SELECT COUNT(*) FROM sessions) AS all_sessions,
    (SELECT COUNT(*) FROM grants) AS all_grants,
    (SELECT COUNT(*) FROM events WHERE id NOT LIKE 'e2e_%') AS login_events`);
  assert.deepEqual(left, {
    auth_requests: 0, grants: 0, tokens: 0, authorization_codes: 0, sessions: 0, app_sessions: 0, gateway_codes: 0, webauthn_challenges: 0,
    seeded_events: "e2e_e_kept",
    // The real login is untouched: its session, its grant and its events.
    all_sessions: 1, all_grants: 1, login_events: liveEvents,
  });
  // And its refresh token still works.
  const refreshed = await oc.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);

  // Nothing dead is left for the next run.
  assert.match(await runCron(gh), /^retention: deleted auth_requests=0 .* events=0$/);
});

test("a bad GATEHOUSE_EVENT_RETENTION_DAYS stops the job and the log names the setting", async () => {
  const bad = await startGatehouse({ secrets: makeSecrets(), testScheduled: true, vars: { GATEHOUSE_EVENT_RETENTION_DAYS: "0" } });
  try {
    const line = await runCron(bad);
    assert.match(line, /not run, configuration error: GATEHOUSE_EVENT_RETENTION_DAYS must be a whole number/);
  } finally {
    await bad.stop();
  }
});
