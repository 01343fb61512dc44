import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGatehouse, makeSecrets } from "./harness.mjs";

let gh;
before(async () => { gh = await startGatehouse(); });
after(async () => { await gh?.stop(); });

test("healthz reports version and reachable D1 and Durable Object", async () => {
  const r = await fetch(`${gh.url}/healthz`);
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.status, "ok");
  assert.match(body.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(body.checks, { d1: "ok", durable_object: "ok" });
});

test("static assets are served from www/ and templates are not", async () => {
  const css = await fetch(`${gh.url}/static/gatehouse.css`);
  assert.equal(css.status, 200);
  assert.match(await css.text(), /font-family/);
  const tpl = await fetch(`${gh.url}/templates/layout.html`);
  assert.equal(tpl.status, 404);
});

test("refuses to serve with a cookie secret under 32 bytes", async () => {
  const secrets = { ...makeSecrets(), GATEHOUSE_COOKIE_SECRET: "too-short" };
  const weak = await startGatehouse({ secrets });
  try {
    const r = await fetch(`${weak.url}/healthz`);
    assert.equal(r.status, 500);
    const text = await r.text();
    assert.doesNotMatch(text, /too-short/);
    // The operator's log names the setting.
    await new Promise((ok) => setTimeout(ok, 300));
    assert.match(weak.logs(), /GATEHOUSE_COOKIE_SECRET is too short/);
  } finally {
    await weak.stop();
  }
});
