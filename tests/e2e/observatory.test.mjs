// Grades every page Gatehouse serves itself with the MDN HTTP Observatory (its scanner, run
// locally against Gatehouse over https on loopback) and requires A+.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { startGatehouse } from "./harness.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const OBS = join(ROOT, "tests/observatory");
let gh;

before(async () => {
  if (!existsSync(join(OBS, "node_modules/@mdn/mdn-http-observatory"))) {
    // --ignore-scripts: a dependency's postinstall downloads a CA bundle from outside the registry.
    execFileSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", OBS], { stdio: "inherit" });
  }
  gh = await startGatehouse({ https: true, vars: { GATEHOUSE_ISSUER: "https://127.0.0.1:{port}" } });
});
after(async () => { await gh?.stop(); });

test("every page Gatehouse serves itself grades A+ in the MDN HTTP Observatory", async () => {
  const port = new URL(gh.url).port;
  // A real pending request, so the login page renders (200) as a user would see it.
  const admin = { authorization: `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}`, "content-type": "application/json" };
  const scanEnv = { ...process.env, NODE_EXTRA_CA_CERTS: gh.certPath };
  const node = process.execPath;
  const script = `
    const [url, token] = process.argv.slice(1);
    const h = { authorization: 'Bearer ' + token, 'content-type': 'application/json' };
    const c = await (await fetch(url + '/admin/api/clients', { method: 'POST', headers: h, body: JSON.stringify({ redirect_uris: ['https://rp.example.com/cb'] }) })).json();
    const r = await fetch(url + '/oauth2/authorize?response_type=code&scope=openid&client_id=' + c.client_id + '&redirect_uri=' + encodeURIComponent('https://rp.example.com/cb'), { redirect: 'manual' });
    console.log(JSON.stringify({ location: r.headers.get('location'), cookie: r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ') }));`;
  const { location: login, cookie } = JSON.parse(execFileSync(node, ["--input-type=module", "-e", script, gh.url, admin.authorization.slice(7)], { env: scanEnv })
    .toString().trim());
  assert.match(login, /^\/oauth2\/login\?req=/);
  // The flow's pages answer only the browser it is bound to: the scan carries its cookie.
  scanEnv.SCAN_COOKIE = cookie;
  const pages = [login, "/oauth2/logout", "/.well-known/openid-configuration", "/oauth2/jwks.json", "/healthz", "/static/gatehouse.css"];
  const out = execFileSync(node, [join(OBS, "scan.mjs"), port, ...pages], { env: scanEnv }).toString();
  const results = out.trim().split("\n").map((l) => JSON.parse(l));
  for (const r of results) {
    console.log(`observatory: ${r.path.replace(/req=[^&]+/, "req=…")}  grade ${r.grade ?? "-"}  score ${r.score ?? "-"}${r.failed?.length ? `  failed: ${r.failed.join(", ")}` : ""}${r.error ? `  error: ${r.error}` : ""}`);
  }
  for (const r of results) assert.equal(r.grade, "A+", `${r.path}: ${JSON.stringify(r)}`);
});
