// Measures the CPU cost of one password verification, one token issuance, one TOTP code check
// and one passkey assertion verification inside workerd.
// Builds Gatehouse with the `bench` feature, starts it under wrangler dev, and reads each cost
// as (median latency at n=N − median latency at n=0) / N over loopback.
// Usage: node bench/cpu.mjs [--quick]
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startGatehouse } from "../tests/e2e/harness.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 3 : 15;

execFileSync("sh", ["scripts/build-worker.sh"], {
  cwd: ROOT, stdio: "inherit", env: { ...process.env, GATEHOUSE_FEATURES: "bench", GATEHOUSE_SKIP_BUILD: "0" },
});

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
async function time(url) {
  const t = performance.now();
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
  return performance.now() - t;
}

const gh = await startGatehouse();
const results = {};
try {
  for (const [what, n] of [["password", quick ? 2 : 10], ["token", quick ? 5 : 100], ["totp", quick ? 20 : 500], ["passkey", quick ? 20 : 500]]) {
    await time(`${gh.url}/__bench/${what}?n=1`); // warm the isolate and key import
    const base = [], loaded = [];
    for (let i = 0; i < ROUNDS; i++) {
      base.push(await time(`${gh.url}/__bench/${what}?n=0`));
      loaded.push(await time(`${gh.url}/__bench/${what}?n=${n}`));
    }
    const perOp = (median(loaded) - median(base)) / n;
    results[what] = { n, rounds: ROUNDS, ms_per_op: Number(perOp.toFixed(3)), base_ms: Number(median(base).toFixed(2)), loaded_ms: Number(median(loaded).toFixed(2)) };
    const unit = {
      token: "token issuance (2 RS256 JWTs)",
      password: "Argon2id verification (m=19 MiB, t=2, p=1)",
      totp: "TOTP check (unseal AES-256-GCM + 3 HMAC-SHA1 steps)",
      passkey: "passkey assertion verification (ES256, WebCrypto)",
    }[what];
    console.log(`${what.padEnd(9)} ${perOp.toFixed(3)} ms per ${unit}  [n=${n}, median of ${ROUNDS}]`);
  }
} finally {
  await gh.stop();
  // Leave a production build behind, never the bench one.
  execFileSync("sh", ["scripts/build-worker.sh"], { cwd: ROOT, stdio: "ignore", env: { ...process.env, GATEHOUSE_SKIP_BUILD: "0" } });
}
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const file = join(ROOT, "bench/results", `cpu-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, results }, null, 2));
console.log(`wrote ${file}`);
