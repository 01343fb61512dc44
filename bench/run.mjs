// Gatehouse side by side with its peers, on the same machine and runtime, in one run.
//
//   node_modules/.bin/node bench/run.mjs [--quick] [--rounds N] [--seconds S] [--concurrency C] [--no-cpu]
//
// Builds Gatehouse (release) and an empty Rust Worker, starts them and the peers on loopback
// (workers-oauth-provider and openauth in minimal Workers under the same wrangler dev/workerd,
// node-oidc-provider on Node), drives every scenario each supports with the same load driver in
// a second process (bench/lib/driver.mjs), and prints one table of rates, latencies and ratios.
// The numbers also go to bench/results/<timestamp>.json. Systems are interleaved round by round
// and each figure is the median over rounds, because the machine is shared and noisy: read the
// ratios, not the absolute numbers. --quick runs a handful of operations per scenario and only
// asserts that every scenario ran and answered 2xx (exit status 1 otherwise), never a speed.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BENCH = import.meta.dirname;
const ROOT = join(BENCH, "..");

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const QUICK = argv.includes("--quick");
const CPU = !argv.includes("--no-cpu");
const CONF = QUICK
  ? { concurrency: 2, rounds: 1, durationMs: 20_000, maxOps: 6, maxFlowOps: 2, warmupOps: 1, warmupMs: 0 }
  : { concurrency: opt("concurrency", 8), rounds: opt("rounds", 3), durationMs: opt("seconds", 3) * 1000, maxOps: 1e9, maxFlowOps: 1e9, warmupOps: 0, warmupMs: 500 };
const log = (m) => console.error(`[bench] ${m}`);
// wrangler dev logs every request through its Node process ("[wrangler:info] GET / 200"): dev
// tooling that production does not have, and that costs every workerd system alike. Keep
// warnings and errors. (Inherited by every wrangler started below, Gatehouse's included.)
process.env.WRANGLER_LOG ??= "warn";

// ---------------------------------------------------------------------------------------------
// Install the peers (pinned in bench/package-lock.json) and build

function ensureBenchDeps() {
  const marker = join(BENCH, "node_modules/.package-lock.json");
  if (!existsSync(marker) || statSync(join(BENCH, "package-lock.json")).mtimeMs > statSync(marker).mtimeMs) {
    log("npm ci --prefix bench");
    execFileSync("npm", ["ci", "--prefix", BENCH, "--no-audit", "--no-fund"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  }
}
ensureBenchDeps();

const { startGatehouse, makeSecrets, freePort } = await import("../tests/e2e/harness.mjs");
const { startWorker, startNodeServer, NODE } = await import("./lib/procs.mjs");
const { buildBenchVariant, measureCpu } = await import("./lib/cpu.mjs");

const wasmSize = (file) => {
  const b = readFileSync(file);
  return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
};
function buildGatehouse() {
  log("building Gatehouse (release): sh scripts/build-worker.sh");
  const out = execFileSync("sh", ["scripts/build-worker.sh"], {
    cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, GATEHOUSE_SKIP_BUILD: "0" },
  });
  const line = out.split("\n").find((l) => l.startsWith("gatehouse wasm size:"));
  if (line) log(line);
  return wasmSize(join(ROOT, "build/index_bg.wasm"));
}
function buildEmptyWorker() {
  log("building the empty Rust Worker (release): sh bench/peers/empty-worker/build.sh");
  execFileSync("sh", [join(BENCH, "peers/empty-worker/build.sh")], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  return wasmSize(join(BENCH, "peers/empty-worker/build/index_bg.wasm"));
}

const t0 = Date.now();
const wasm = { gatehouse: buildGatehouse(), empty_worker: buildEmptyWorker() };
const cpuConfig = CPU ? buildBenchVariant({ log }) : null;

// ---------------------------------------------------------------------------------------------
// Start everything; stop everything afterwards, whatever happens

const running = [];
async function stopAll() {
  const all = running.splice(0);
  await Promise.allSettled(all.map((s) => s.stop()));
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => { log(`${sig}: stopping everything`); await stopAll(); process.exit(130); });
}
const track = async (what, p) => {
  const s = await p;
  running.push(s);
  log(`${what} up at ${s.url}`);
  return s;
};

const REDIRECT_URI = "http://127.0.0.1:9/cb";
const GH_VARS = { GATEHOUSE_RATE_LIMIT_RPS: "0" };
const PASSWORD = `bench ${randomBytes(9).toString("base64url")} passphrase`;
const USERS = Array.from({ length: Math.max(CONF.concurrency, 2) }, (_, i) => ({ username: `bench${i}`, email: `bench${i}@example.com`, password: PASSWORD }));
const SETUP_TOKEN = randomBytes(24).toString("base64url");
const OP_SECRET = randomBytes(24).toString("base64url");

const scenarios = [
  ["empty", "GET / (empty Worker: the workerd ceiling)"],
  ["discovery", "discovery document (cached read)"],
  ["jwks", "JWKS (cached read)"],
  ["client_credentials", "token: client_credentials"],
  ["refresh_token", "token: refresh_token (rotating)"],
  ["code_flow_login", "code+PKCE, full: authorize, login page, login POST, code, token"],
  ["code_flow_session", "code+PKCE with an SSO session: authorize, code, token"],
  ["gateway", "protected GET through the Gatehouse gateway"],
  ["origin", "the same GET straight to the origin"],
];
const GH = "gatehouse";
const BASELINE = "empty-worker (same rounds)";
const FLOWS = new Set(["code_flow_login", "code_flow_session", "refresh_token", "gateway"]);

let exitCode = 0;
const results = {};
const notes = [];
let cpu = null;
try {
  // Origin for the gateway scenario: a tiny loopback server in this (otherwise idle) process.
  const originPort = await freePort();
  const origin = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": "17" });
    res.end("hello from origin");
  });
  await new Promise((ok) => origin.listen(originPort, "127.0.0.1", ok));
  running.push({ url: `http://127.0.0.1:${originPort}`, stop: () => new Promise((ok) => origin.close(ok)) });

  const oidcPort = await freePort();
  const [gh, empty, wop, oa, op] = await Promise.all([
    // One client IP sends everything here, and no peer rate-limits: turn Gatehouse's per-IP
    // limiter off (RPS=0, documented for deployments behind a WAF); lockout and reputation stay.
    track("gatehouse", startGatehouse({ vars: GH_VARS })),
    track("empty-worker", startWorker({ cwd: join(BENCH, "peers/empty-worker"), health: "/" })),
    track("workers-oauth-provider", startWorker({ cwd: join(BENCH, "peers/workers-oauth-provider"), vars: { SETUP_TOKEN } })),
    track("openauth", startWorker({ cwd: join(BENCH, "peers/openauth"), vars: { SETUP_TOKEN } })),
    track("oidc-provider", startNodeServer({
      script: join(BENCH, "peers/oidc-provider/server.mjs"), cwd: join(BENCH, "peers/oidc-provider"), port: oidcPort,
      health: "/.well-known/openid-configuration",
      input: { port: oidcPort, users: USERS, client: { client_id: "bench", client_secret: OP_SECRET, redirect_uris: [REDIRECT_URI] } },
    })),
  ]);

  // --- seed ---------------------------------------------------------------------------------
  const call = async (base, method, path, body, token) => {
    const r = await fetch(base + path, {
      method, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json; try { json = JSON.parse(text); } catch {}
    return { status: r.status, text, json };
  };
  const must = (r, status, what) => {
    if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status}: ${r.text.slice(0, 300)}`);
    return r.json;
  };
  const admin = gh.secrets.GATEHOUSE_ADMIN_TOKEN;
  for (const u of USERS) {
    must(await call(gh.url, "POST", "/admin/api/users", { username: u.username, email: u.email, password: PASSWORD, name: "Bench User" }, admin), 201, "gatehouse: create user");
    must(await call(oa.url, "POST", "/__setup/user", { email: u.email, password: PASSWORD }, SETUP_TOKEN), 201, "openauth: seed user");
  }
  const ghClient = must(await call(gh.url, "POST", "/admin/api/clients", {
    client_name: "bench", redirect_uris: [REDIRECT_URI], grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    token_endpoint_auth_method: "client_secret_basic", scope: "openid profile email offline_access api:read", first_party: true,
  }, admin), 201, "gatehouse: create client");
  // The app lives on its own host name (Gatehouse refuses its own): localhost beside 127.0.0.1.
  const appHost = `localhost:${new URL(gh.url).port}`;
  const app = await call(gh.url, "POST", "/admin/api/apps", {
    name: "bench", host: appHost, path_prefix: "/app/", origin: `http://127.0.0.1:${originPort}`, require_login: true,
  }, admin);
  const gatewayNa = app.status === 201 ? null
    : app.status === 404 ? "gateway not available (404 from /admin/api/apps)"
    : `gateway not available (${app.status} from /admin/api/apps: ${app.text.slice(0, 120)})`;
  if (gatewayNa) log(gatewayNa);
  const wopClient = must(await call(wop.url, "POST", "/__setup/client", { redirect_uris: [REDIRECT_URI] }, SETUP_TOKEN), 201, "workers-oauth-provider: create client");

  // Endpoints come from each system's own metadata document.
  async function endpoints(base, discoveryPath) {
    const d = must(await call(base, "GET", discoveryPath), 200, `${base}${discoveryPath}`);
    const p = (u) => (u ? new URL(u).pathname : undefined);
    return { discovery: discoveryPath, authorize: p(d.authorization_endpoint), token: p(d.token_endpoint), jwks: p(d.jwks_uri) };
  }
  const systems = [
    {
      name: "gatehouse", kind: "gatehouse", base: gh.url, users: USERS,
      endpoints: await endpoints(gh.url, "/.well-known/openid-configuration"),
      client: { client_id: ghClient.client_id, client_secret: ghClient.client_secret, redirect_uri: REDIRECT_URI },
      gatewayBase: `http://${appHost}`, gatewayPath: "/app/hello",
      na: { empty: "-", origin: "-", ...(gatewayNa ? { gateway: gatewayNa } : {}) },
    },
    {
      name: "workers-oauth-provider", base: wop.url, users: USERS,
      endpoints: await endpoints(wop.url, "/.well-known/oauth-authorization-server"),
      client: { client_id: wopClient.client_id, client_secret: wopClient.client_secret, redirect_uri: REDIRECT_URI },
      sessionLogin: false, sessionExtra: {},
      na: {
        empty: "-", origin: "-", gateway: "-",
        jwks: "n/a: opaque tokens, no JWKS",
        client_credentials: "n/a: grant not implemented",
        code_flow_login: "n/a: sign-in is left to the app (see the session row: auto-approving /authorize)",
      },
    },
    {
      name: "openauth", base: oa.url, users: USERS, tokenAuth: "none",
      endpoints: await endpoints(oa.url, "/.well-known/oauth-authorization-server"),
      client: { client_id: "bench", redirect_uri: REDIRECT_URI },
      na: {
        empty: "-", origin: "-", gateway: "-",
        client_credentials: "n/a: no built-in provider implements client()",
        code_flow_session: "n/a: no SSO session, every authorize shows the login form",
      },
    },
    {
      name: "oidc-provider", base: op.url, users: USERS,
      endpoints: await endpoints(op.url, "/.well-known/openid-configuration"),
      client: { client_id: "bench", client_secret: OP_SECRET, redirect_uri: REDIRECT_URI },
      loginExtra: { prompt: "consent" }, // offline_access is honoured only with prompt=consent (OIDC Core 11)
      na: { empty: "-", origin: "-", gateway: "-" },
    },
    { name: "empty-worker", base: empty.url, na: Object.fromEntries(scenarios.filter(([s]) => s !== "empty").map(([s]) => [s, "-"])) },
    {
      name: "origin (direct)", base: `http://127.0.0.1:${originPort}`, originPath: "/app/hello",
      na: Object.fromEntries(scenarios.filter(([s]) => s !== "origin").map(([s]) => [s, "-"])),
    },
  ];

  // --- drive --------------------------------------------------------------------------------
  const drive = (system, scenario) => new Promise((ok, fail) => {
    const flow = FLOWS.has(scenario) && scenario !== "refresh_token";
    const spec = {
      system, scenario, concurrency: CONF.concurrency, durationMs: CONF.durationMs,
      maxOps: flow ? CONF.maxFlowOps : CONF.maxOps, warmupMs: CONF.warmupMs, warmupOps: CONF.warmupOps,
    };
    const child = spawn(NODE, [join(BENCH, "lib/driver.mjs")], { cwd: BENCH, stdio: ["pipe", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      if (code !== 0) return fail(new Error(`driver ${system.name}/${scenario} exited ${code}: ${err.slice(-1500)}`));
      ok(JSON.parse(out.trim().split("\n").pop()));
    });
    child.stdin.end(JSON.stringify(spec));
  });

  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
  for (const [scenario] of scenarios) {
    results[scenario] = {};
    const active = systems.filter((s) => !s.na[scenario]);
    for (const s of systems) if (s.na[scenario] && s.na[scenario] !== "-") results[scenario][s.name] = { na: s.na[scenario] };
    // The empty Worker runs again in every round of every Gatehouse scenario, so that
    // "fraction of the runtime's ceiling" compares figures taken at the same moments.
    const baseline = scenario !== "empty" && active.some((s) => s.name === GH) && !QUICK
      ? { ...systems.find((s) => s.name === "empty-worker"), name: BASELINE, baselineOf: "empty" } : null;
    const order = baseline ? [...active, baseline] : active;
    const runs = Object.fromEntries(order.map((s) => [s.name, []]));
    for (let round = 0; round < CONF.rounds; round++) {
      for (const s of order) {
        let r;
        try {
          r = await drive(s, s.baselineOf ?? scenario);
        } catch (e) {
          r = { ok: 0, errors: 1, ops: 0, firstError: String(e.message), rate: 0, p50: null, p99: null, statuses: {} };
        }
        runs[s.name].push(r);
        log(`${scenario.padEnd(18)} ${s.name.padEnd(24)} round ${round + 1}: ${r.rate}/s p50 ${r.p50} ms p99 ${r.p99} ms` +
          (r.errors ? `  ERRORS ${r.errors} ${JSON.stringify(r.statuses)}: ${r.firstError}` : ""));
      }
    }
    for (const [name, rs] of Object.entries(runs)) {
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      const ok = rs.reduce((a, r) => a + r.ok, 0);
      results[scenario][name] = {
        rate: median(rs.map((r) => r.rate)), p50: median(rs.map((r) => r.p50 ?? Infinity)), p99: median(rs.map((r) => r.p99 ?? Infinity)),
        ok, errors, requests_per_op: rs[0]?.requestsPerOp, rounds: rs.map((r) => ({ rate: r.rate, p50: r.p50, p99: r.p99, errors: r.errors })),
        ...(errors ? { first_error: rs.find((r) => r.firstError)?.firstError } : {}),
      };
      if (errors || ok === 0) {
        exitCode = 1;
        notes.push(`FAILED: ${scenario} on ${name}: ${ok} ok, ${errors} errors: ${rs.find((r) => r.firstError)?.firstError ?? "no operation completed"}`);
      }
    }
  }
  if (gatewayNa) notes.push(gatewayNa);

  await stopAll();
  if (CPU) {
    log("measuring CPU per token issuance and per password verification inside workerd");
    cpu = await measureCpu({ config: cpuConfig, quick: QUICK, log });
  }
} catch (e) {
  exitCode = 1;
  notes.push(`FAILED: ${e.stack ?? e}`);
} finally {
  await stopAll();
}

// ---------------------------------------------------------------------------------------------
// Report: one table, and the same numbers as JSON

const version = (dir) => { try { return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version; } catch { return "?"; } };
const versions = {
  "@cloudflare/workers-oauth-provider": version(join(BENCH, "node_modules/@cloudflare/workers-oauth-provider")),
  "@openauthjs/openauth": version(join(BENCH, "node_modules/@openauthjs/openauth")),
  "oidc-provider": version(join(BENCH, "node_modules/oidc-provider")),
  undici: version(join(BENCH, "node_modules/undici")),
  wrangler: version(join(ROOT, "node_modules/wrangler")),
  workerd: version(join(ROOT, "node_modules/@cloudflare/workerd-linux-64")),
  node: process.versions.node,
};
const ratios = {};
for (const [scenario, bySystem] of Object.entries(results)) {
  const g = bySystem[GH];
  if (!g || g.na || !g.rate) continue;
  ratios[scenario] = {};
  for (const [name, r] of Object.entries(bySystem)) {
    if (name !== GH && name !== BASELINE && !r.na && r.rate) ratios[scenario][`gatehouse/${name}`] = Number((g.rate / r.rate).toFixed(2));
  }
  const e = bySystem[BASELINE] ?? results.empty?.["empty-worker"];
  if (e?.rate) ratios[scenario]["gatehouse/empty-worker"] = Number((g.rate / e.rate).toFixed(3));
}
if (results.gateway?.[GH]?.rate && results.origin?.["origin (direct)"]?.rate) {
  ratios.gateway["gateway/origin-direct"] = Number((results.gateway[GH].rate / results.origin["origin (direct)"].rate).toFixed(3));
}

const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
const lines = [];
lines.push(`Gatehouse vs peers, ${new Date().toISOString()}, ${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}` +
  `${QUICK ? ", QUICK (harness check only: numbers mean nothing)" : ""}`);
lines.push(`concurrency ${CONF.concurrency}, ${CONF.rounds} round(s) of ${QUICK ? `at most ${CONF.maxOps} ops (flows ${CONF.maxFlowOps})` : `${CONF.durationMs / 1000} s`} per system and scenario, systems interleaved, medians over rounds`);
lines.push("rate: requests/s (flows/s for the code-flow rows: every request of the flow counts as one op); p50/p99: ms per op; ratio: gatehouse rate / this rate");
lines.push("");
lines.push("| scenario | system | rate/s | p50 ms | p99 ms | gatehouse ÷ this |");
lines.push("| --- | --- | ---: | ---: | ---: | ---: |");
const fmt = (x, d = 0) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
for (const [scenario, label] of scenarios) {
  const bySystem = results[scenario] ?? {};
  for (const [name, r] of Object.entries(bySystem)) {
    if (name === BASELINE) continue;
    let ratio = "";
    if (!r.na && name !== GH) {
      const g = bySystem[GH];
      if (g?.rate && r.rate) ratio = `${(g.rate / r.rate).toFixed(2)}×`;
    } else if (!r.na && name === GH && ratios[scenario]?.["gatehouse/empty-worker"] !== undefined) {
      const e = bySystem[BASELINE];
      ratio = `${ratios[scenario]["gatehouse/empty-worker"].toFixed(2)} of empty Worker${e ? ` (${fmt(e.rate)}/s in these rounds)` : ""}`;
    }
    if (scenario === "origin") ratio = ratios.gateway?.["gateway/origin-direct"] !== undefined ? `gateway = ${ratios.gateway["gateway/origin-direct"].toFixed(2)} of direct` : "";
    const perOp = r.requests_per_op > 1 ? ` (${r.requests_per_op} req/op)` : "";
    lines.push(r.na
      ? `| ${label} | ${name} | ${r.na} | | | |`
      : `| ${label}${perOp} | ${name} | ${fmt(r.rate, r.rate < 100 ? 1 : 0)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${ratio}${r.errors ? ` **${r.errors} errors**` : ""} |`);
  }
}
lines.push("");
lines.push(`Gatehouse release wasm: ${wasm.gatehouse.raw} bytes raw (${kib(wasm.gatehouse.raw)}), ${wasm.gatehouse.gzip} bytes gzip (${kib(wasm.gatehouse.gzip)}); ` +
  `empty Rust Worker: ${wasm.empty_worker.raw} raw, ${wasm.empty_worker.gzip} gzip`);
if (cpu) {
  lines.push(`CPU inside workerd: ${cpu.token.ms_per_op} ms per token issuance (RS256 access token + ID token), ` +
    `${cpu.password.ms_per_op} ms per password verification (Argon2id m=19 MiB, t=2, p=1)`);
}
lines.push(`versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(", ")}`);
lines.push(`total time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
for (const n of notes) lines.push(n);
console.log(lines.join("\n"));

mkdirSync(join(BENCH, "results"), { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const file = join(BENCH, "results", `${QUICK ? "quick-" : ""}${stamp}.json`);
writeFileSync(file, JSON.stringify({
  date: new Date().toISOString(), quick: QUICK, config: CONF, machine: { cores: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
  versions, wasm, cpu, results, ratios, notes, seconds: (Date.now() - t0) / 1000,
}, null, 2) + "\n");
console.log(`wrote ${file}`);
if (QUICK && exitCode === 0) {
  // The harness check: every scenario ran somewhere and answered 2xx.
  for (const [scenario] of scenarios) {
    const ran = Object.values(results[scenario] ?? {}).filter((r) => !r.na);
    const skippedGateway = scenario === "gateway" && notes.some((n) => n.startsWith("gateway not available"));
    if (!skippedGateway && (ran.length === 0 || ran.some((r) => !r.ok || r.errors))) {
      console.error(`quick check failed: scenario ${scenario} did not run cleanly`);
      exitCode = 1;
    }
  }
  if (CPU && !(cpu?.token && cpu?.password)) { console.error("quick check failed: CPU measurement missing"); exitCode = 1; }
}
process.exit(exitCode);
