// Starting and stopping the systems under test: any Worker directory under the root's
// `wrangler dev` (same wrangler, same workerd as Gatehouse), and Node servers. Each runs in its
// own process group on a free loopback port with a fresh temporary state directory, and is
// stopped by its process group id.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../../tests/e2e/harness.mjs";

export const ROOT = resolve(import.meta.dirname, "../..");
export const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
export const NODE = join(ROOT, "node_modules/.bin/node");

export const childEnv = (extra = {}) => ({
  ...process.env,
  PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  ...extra,
});

function stopper(child, dir) {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      await new Promise((ok) => {
        const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch {} ok(); }, 5000);
        child.once("exit", () => { clearTimeout(t); ok(); });
      });
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}

async function waitUntil(child, url, output, stop, okStatus = (s) => s !== 404) {
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`${url}: process exited early:\n${output()}`);
    }
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (okStatus(r.status)) return;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${url} did not answer in time:\n${output()}`);
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/**
 * `wrangler dev` for the Worker in `cwd` (its wrangler.toml, or `config`), on loopback.
 * `d1` applies the D1 migrations of binding DB first. Returns { url, stop, logs }.
 */
export async function startWorker({ cwd, config, vars = {}, envFile, d1 = false, health = "/healthz", env = {} }) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
  const state = join(dir, "state");
  const cfg = config ? ["--config", config] : [];
  if (d1) {
    execFileSync(WRANGLER, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state, ...cfg], {
      cwd, env: childEnv(), stdio: ["ignore", "ignore", "inherit"],
    });
  }
  const port = await freePort();
  const inspectorPort = await freePort();
  const args = [
    "dev", ...cfg, "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state,
    "--show-interactive-dev-session=false", "--inspector-port", String(inspectorPort),
  ];
  if (envFile) {
    const f = join(dir, "dev.vars");
    writeFileSync(f, Object.entries(envFile).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n") + "\n", { mode: 0o600 });
    args.push("--env-file", f);
  }
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(WRANGLER, args, { cwd, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = stopper(child, dir);
  await waitUntil(child, url + health, () => out, stop);
  return { url, port, inspectorPort, stop, logs: () => out, pid: child.pid };
}

/** A Node server script run with the root's Node 22; `input` is written to its stdin as JSON. */
export async function startNodeServer({ script, cwd, input, port, health }) {
  const child = spawn(NODE, [script], { cwd, env: childEnv(), stdio: ["pipe", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  child.stdin.end(JSON.stringify(input));
  const url = `http://127.0.0.1:${port}`;
  const stop = stopper(child);
  await waitUntil(child, url + health, () => out, stop, (s) => s < 500);
  return { url, port, stop, logs: () => out, pid: child.pid };
}
