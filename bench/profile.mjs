// Where Gatehouse's time goes under load: one scenario driven by the bench driver while
// (1) the V8 sampling profiler runs in Gatehouse's isolate (Chrome DevTools protocol through
// wrangler's inspector port) and (2) the CPU time of every process involved is read from /proc.
//
//   node_modules/.bin/node bench/profile.mjs [scenario] [--seconds S] [--concurrency C]
//   scenarios: discovery, jwks, client_credentials (default), refresh_token, code_flow_session, gateway
//
// Uses the release build in build/ as it is (run scripts/build-worker.sh first). Prints the CPU
// split between processes (the driver, wrangler's Node, each workerd) and the isolate's own
// profile: idle vs busy, and the busy samples by function (wasm functions keep only their index
// in a release build unless it carries a name section).
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { WebSocket } from "undici";
import { freePort, makeSecrets } from "../tests/e2e/harness.mjs";
import { NODE, ROOT, startWorker } from "./lib/procs.mjs";

process.env.WRANGLER_LOG ??= "warn";
const argv = process.argv.slice(2);
const opt = (n, d) => (argv.includes(`--${n}`) ? Number(argv[argv.indexOf(`--${n}`) + 1]) : d);
const scenario = argv.find((a, i) => !a.startsWith("--") && !argv[i - 1]?.startsWith("--")) ?? "client_credentials";
const seconds = opt("seconds", 5);
const concurrency = opt("concurrency", 8);

const TICK = 100; // clock ticks per second for /proc/<pid>/stat
function cpuTimes() {
  const out = new Map();
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      out.set(pid, { comm, cmd, pgid: f[2], cpu: (Number(f[11]) + Number(f[12])) / TICK });
    } catch {}
  }
  return out;
}

const origin = createServer((_q, s) => s.end("hello from origin"));
const originPort = await freePort();
await new Promise((ok) => origin.listen(originPort, "127.0.0.1", ok));
const secrets = makeSecrets();
// As in run.mjs: one client IP, so the per-IP rate limiter is off (RPS=0).
const gh = await startWorker({ cwd: ROOT, d1: true, envFile: secrets, env: { GATEHOUSE_SKIP_BUILD: "1" }, vars: { GATEHOUSE_RATE_LIMIT_RPS: "0" } });
try {
  const admin = secrets.GATEHOUSE_ADMIN_TOKEN;
  const post = async (p, b) => {
    const r = await fetch(gh.url + p, { method: "POST", headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }, body: JSON.stringify(b) });
    return { status: r.status, json: await r.json().catch(() => null) };
  };
  const users = Array.from({ length: concurrency }, (_, i) => ({ username: `bench${i}`, email: `bench${i}@example.com`, password: "correct horse battery staple 1" }));
  for (const u of users) await post("/admin/api/users", { ...u, name: "Bench" });
  const c = (await post("/admin/api/clients", {
    client_name: "bench", redirect_uris: ["http://127.0.0.1:9/cb"], grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    token_endpoint_auth_method: "client_secret_basic", scope: "openid profile email offline_access api:read", first_party: true,
  })).json;
  // The app lives on its own host name (Gatehouse refuses its own): localhost beside 127.0.0.1.
  await post("/admin/api/apps", { name: "bench", host: `localhost:${gh.port}`, path_prefix: "/app/", origin: `http://127.0.0.1:${originPort}`, require_login: true });
  const system = {
    name: "gatehouse", base: gh.url, users, gatewayBase: `http://localhost:${gh.port}`, gatewayPath: "/app/hello",
    endpoints: { authorize: "/oauth2/authorize", token: "/oauth2/token", discovery: "/.well-known/openid-configuration", jwks: "/oauth2/jwks.json" },
    client: { client_id: c.client_id, client_secret: c.client_secret, redirect_uri: "http://127.0.0.1:9/cb" },
  };

  // The isolate's inspector target.
  const targets = await (await fetch(`http://127.0.0.1:${gh.inspectorPort}/json/list`)).json();
  const target = targets.find((t) => /gatehouse/i.test(`${t.title} ${t.url}`)) ?? targets[0];
  // wrangler's inspector proxy accepts DevTools' own origin only.
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "https://devtools.devprod.cloudflare.dev" } });
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  };
  const send = (method, params = {}) => new Promise((ok) => { const i = ++id; pending.set(i, ok); ws.send(JSON.stringify({ id: i, method, params })); });

  const driver = (ms) => new Promise((ok, fail) => {
    const child = spawn(NODE, [join(ROOT, "bench/lib/driver.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("exit", (code) => (code === 0 ? ok({ pid: child.pid, ...JSON.parse(out) }) : fail(new Error(`driver exited ${code}`))));
    child.stdin.end(JSON.stringify({ system, scenario, concurrency, durationMs: ms, maxOps: 1e9, warmupMs: 1000 }));
  });

  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 200 });
  const before = cpuTimes();
  const t0 = performance.now();
  const run = driver(seconds * 1000);
  await new Promise((ok) => setTimeout(ok, 1200)); // past the setup and the warm-up
  await send("Profiler.start");
  const r = await run;
  const { result } = await send("Profiler.stop");
  const wall = (performance.now() - t0) / 1000;
  const after = cpuTimes();
  ws.close();

  console.log(`scenario ${scenario}: ${r.rate}/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.errors} errors${r.errors ? ` (${r.firstError})` : ""} (concurrency ${concurrency}, ${seconds} s)`);
  console.log(`\nCPU seconds per process over ${wall.toFixed(1)} s of wall time (whole run incl. the driver's setup):`);
  const rows = [];
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const d = a.cpu - (b?.cpu ?? 0);
    if (d < 0.05) continue;
    const what = a.comm === "workerd" ? `workerd (${a.pgid === String(gh.pid) ? "wrangler dev of gatehouse" : "other"})`
      : /driver\.mjs/.test(a.cmd) ? "load driver (node)" : /wrangler/.test(a.cmd) ? "wrangler (node)" : `${a.comm}: ${a.cmd.slice(0, 60)}`;
    rows.push([d, pid, what]);
  }
  for (const [d, pid, what] of rows.sort((x, y) => y[0] - x[0]).slice(0, 10)) {
    console.log(`  ${d.toFixed(2).padStart(6)} s  ${(d / Math.max(1, r.ok) * 1000).toFixed(2).padStart(6)} ms/op  pid ${pid}  ${what}`);
  }

  // The isolate's profile: self time per function.
  const { nodes, samples, timeDeltas } = result.profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  samples.forEach((sid, i) => {
    const dt = timeDeltas[i] ?? 0;
    total += dt;
    const n = byId.get(sid);
    const f = n.callFrame;
    const file = f.url ? f.url.split("/").pop() : "";
    const where = file && !/\.wasm/.test(file) ? ` ${file}:${f.lineNumber + 1}` : file ? ` ${file}` : "";
    const key = `${f.functionName || "(anonymous)"}${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const idle = self.get("(idle)") ?? 0;
  const okDuringProfile = r.rate * (total / 1e6);
  console.log(`\nGatehouse isolate (${target.title}): ${(total / 1e6).toFixed(2)} s profiled, ${(100 * idle / total).toFixed(0)}% idle; ` +
    `busy ≈ ${((total - idle) / 1e3 / Math.max(1, okDuringProfile)).toFixed(2)} ms per op`);
  const cat = { wasm: 0, js: 0, other: 0 };
  for (const [k, v] of self) {
    if (k === "(idle)") continue;
    if (/wasm/i.test(k)) cat.wasm += v; else if (/\.m?js(:\d+)?$/.test(k)) cat.js += v; else cat.other += v;
  }
  const busy = total - idle;
  console.log(`busy split: wasm ${(100 * cat.wasm / busy).toFixed(0)}%, JS glue ${(100 * cat.js / busy).toFixed(0)}%, ` +
    `native/runtime (WebCrypto, GC, program) ${(100 * cat.other / busy).toFixed(0)}%`);
  console.log("top self time:");
  for (const [k, v] of [...self].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, 20)) {
    console.log(`  ${(100 * v / busy).toFixed(1).padStart(5)}%  ${k}`);
  }
} finally {
  await gh.stop();
  origin.close();
}
