// Starts Gatehouse under `wrangler dev` on a free loopback port with a fresh state directory
// and fresh secrets, applies the migrations, and stops it afterwards.
import { spawn, execFile, execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const ROOT = resolve(import.meta.dirname, "../..");
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
const execFileAsync = promisify(execFile);

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** GET over https trusting `caPath`; resolves to the status code. */
export function httpsStatus(url, caPath) {
  return new Promise((ok, fail) => {
    const req = httpsRequest(url, { ca: readFileSync(caPath) }, (res) => { res.resume(); ok(res.statusCode); });
    req.on("error", fail);
    req.end();
  });
}

export function makeSecrets() {
  const pem = (type, opts) =>
    generateKeyPairSync(type, opts).privateKey.export({ type: "pkcs8", format: "pem" });
  return {
    GATEHOUSE_COOKIE_SECRET: randomBytes(32).toString("base64url"),
    GATEHOUSE_ADMIN_TOKEN: randomBytes(32).toString("base64url"),
    GATEHOUSE_SEALING_KEY: randomBytes(32).toString("base64url"),
    GATEHOUSE_PRIVATE_KEY: Buffer.from(
      pem("rsa", { modulusLength: 2048 }) + pem("ec", { namedCurve: "P-256" }),
    ).toString("base64"),
  };
}

const env = () => ({
  ...process.env,
  // wrangler needs Node 22: the npm package node@22 puts it first.
  PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  GATEHOUSE_SKIP_BUILD: process.env.GATEHOUSE_SKIP_BUILD ?? "1",
});

/**
 * Starts a Gatehouse. `secrets` may omit or shorten values to test refusal to serve;
 * `vars` overrides [vars]; `testScheduled` exposes `GET /__scheduled?cron=…`, which runs the
 * Cron Trigger's handler. `readyPath` is polled until it answers other than 404: with a
 * GATEHOUSE_ISSUER on another host, /healthz is not Gatehouse's on 127.0.0.1 (pass a path under
 * /.gatehouse/, which is on every host).
 */
export async function startGatehouse({ secrets = makeSecrets(), vars = {}, https = false, testScheduled = false, readyPath = "/healthz", wranglerExtra = "", strength = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-e2e-"));
  // Extra configuration (a binding the shipped wrangler.toml leaves commented out): a copy of
  // wrangler.toml with it appended, beside the original so its relative paths still resolve.
  let config = null;
  if (wranglerExtra) {
    config = join(ROOT, `wrangler.e2e-${randomBytes(4).toString("hex")}.toml`);
    writeFileSync(config, readFileSync(join(ROOT, "wrangler.toml"), "utf8") + "\n" + wranglerExtra + "\n");
  }
  const state = join(dir, "state");
  const envFile = join(dir, "dev.vars");
  writeFileSync(
    envFile,
    Object.entries(secrets)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n") + "\n",
    { mode: 0o600 },
  );
  execFileSync(WRANGLER, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], {
    cwd: ROOT,
    env: env(),
    stdio: ["ignore", "ignore", "inherit"],
  });
  const port = await freePort();
  const args = [
    "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state,
    "--env-file", envFile, "--show-interactive-dev-session=false",
    "--inspector-port", String(await freePort()),
  ];
  if (testScheduled) args.push("--test-scheduled");
  if (config) args.push("--config", config);
  // The password-strength Worker (zxcvbn) in the same wrangler dev, reached through the STRENGTH
  // service binding; the main config must then be named first.
  if (strength) {
    if (!config) args.push("--config", join(ROOT, "wrangler.toml"));
    args.push("--config", join(ROOT, "workers/strength/wrangler.toml"));
  }
  // `{port}` in a var stands for the port chosen here (e.g. GATEHOUSE_ISSUER).
  let certPath = null;
  if (https) {
    // A throwaway self-signed certificate for 127.0.0.1; callers trust it via NODE_EXTRA_CA_CERTS.
    certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", keyPath, "-out", certPath,
    ], { stdio: "ignore" });
    args.push("--local-protocol", "https", "--https-key-path", keyPath, "--https-cert-path", certPath);
  }
  // Every suite shares 127.0.0.1, so the per-IP limiter is off unless a suite turns it on
  // (tests/e2e/ratelimit.test.mjs does). Tests never reach the real Pwned Passwords API: the
  // check is off unless a suite points it at its stub (tests/e2e/password-policy.test.mjs). The
  // zxcvbn score needs the strength Worker, started only for the suites that ask (`strength`).
  const defaults = { GATEHOUSE_RATE_LIMIT_RPS: "0", GATEHOUSE_HIBP_URL: "", GATEHOUSE_PASSWORD_MIN_STRENGTH: strength ? "3" : "0" };
  for (const [k, v] of Object.entries({ ...defaults, ...vars })) args.push("--var", `${k}:${String(v).replaceAll("{port}", port)}`);
  const child = spawn(WRANGLER, args, { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const url = `${https ? "https" : "http"}://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      await new Promise((ok) => {
        const t = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch {} ok(); }, 5000);
        child.once("exit", () => { clearTimeout(t); ok(); });
      });
    }
    rmSync(dir, { recursive: true, force: true });
    if (config) rmSync(config, { force: true });
  };
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited early:\n${output}`);
    }
    try {
      const status = certPath ? await httpsStatus(`${url}${readyPath}`, certPath) : (await fetch(`${url}${readyPath}`)).status;
      if (status !== 404 || Date.now() > deadline) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer in time:\n${output}`);
    }
    await new Promise((ok) => setTimeout(ok, 300));
  }
  /**
   * Runs SQL on the local D1 database; resolves to the first statement's rows. Asynchronous, so
   * the event loop keeps running: a blocking call of a few seconds would let the server close an
   * idle kept-alive connection before the client notices, and the next fetch would fail on it.
   */
  const d1 = async (command) => {
    const { stdout } = await execFileAsync(
      WRANGLER,
      ["d1", "execute", "DB", "--local", "--persist-to", state, "--json", "--command", command],
      { cwd: ROOT, env: env(), encoding: "utf8" },
    );
    return JSON.parse(stdout)[0].results;
  };
  return { url, secrets, stop, logs: () => output, certPath, d1 };
}
