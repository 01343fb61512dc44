// The per-IP rate limiter under a bounded load on loopback: is it exact, and what does it cost?
//
// 1. Accuracy. One Gatehouse with 1/s burst 5 and 6/min burst 6. Several simulated client IPs
//    (CF-Connecting-IP, which wrangler dev passes through as the Cloudflare edge would set it)
//    each send three phases of concurrent requests to POST /oauth2/token. The expected number
//    admitted per IP and phase comes from a model of the algorithm (GCRA, both tiers, a refused
//    request consumes nothing) at the phases' nominal times; the script prints allowed vs
//    expected and the error, which must be zero, and how far each phase could drift in time
//    before the model's answer would change (so a zero error is not luck of timing).
// 2. Latency. Two more Gatehouses in the same run, identical but for the limiter: on (limits so
//    high nothing is refused, so every request pays the Durable Object round trip and nothing
//    else) and off (GATEHOUSE_RATE_LIMIT_RPS=0). Requests alternate between them; the added
//    latency is on minus off, median and p99.
//
// Usage: node bench/rate_limit.mjs [--quick]   (GATEHOUSE_SKIP_BUILD=1 reuses build/worker)
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startGatehouse } from "../tests/e2e/harness.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const quick = process.argv.includes("--quick");
const IPS = Array.from({ length: quick ? 4 : 8 }, (_, i) => `198.51.100.${10 + i}`);
const LATENCY_N = quick ? 100 : 500;
const STAGGER_MS = 150;

// The accuracy instance's limits and the load: [offset from start in ms, requests per IP].
const TIERS = [
  { rate: 1, periodMs: 1000, burst: 5 },
  { rate: 6, periodMs: 60_000, burst: 6 },
];
const PHASES = [
  { at: 0, perIp: 8 }, //     the per-second burst binds: 5
  { at: 2500, perIp: 4 }, //  the second tier has 2 again, the minute tier only 1 left: 1
  { at: 12_500, perIp: 4 }, // the minute tier has refilled one: 1
];

execFileSync("sh", ["scripts/build-worker.sh"], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, GATEHOUSE_SKIP_BUILD: process.env.GATEHOUSE_SKIP_BUILD ?? "0" },
});

// ---------------------------------------------------------------------------------------------
// The model: GCRA per tier in µs, T rounded up, all tiers or none.

function model(tiers, arrivalsMs) {
  const tat = tiers.map(() => null);
  return arrivalsMs.map((nowMs) => {
    const now = nowMs * 1000;
    const next = [];
    for (const [i, t] of tiers.entries()) {
      const interval = Math.ceil((t.periodMs * 1000) / t.rate);
      const cur = Math.max(tat[i] ?? now, now);
      if (now < cur - interval * (t.burst - 1)) return false;
      next.push(cur + interval);
    }
    next.forEach((v, i) => (tat[i] = v));
    return true;
  });
}

/**
 * Admitted per phase for one IP. Each phase's requests arrive at its nominal time, moved by
 * `shift[i]`; with `spread[i]`, one request of the phase arrives that much later than the others
 * (and, separately, that much earlier), the arrangements that change an answer soonest.
 */
function expectedPerPhase({ shift = [], spread = [], lateOne = true } = {}) {
  const arrivals = PHASES.flatMap((p, i) => {
    const t = p.at + (shift[i] ?? 0);
    const s = spread[i] ?? 0;
    const times = Array(p.perIp).fill(t);
    if (lateOne) times[p.perIp - 1] = t + s;
    else times.fill(t + s, 1);
    return times;
  });
  const admitted = model(TIERS, arrivals);
  let k = 0;
  return PHASES.map((p) => admitted.slice(k, (k += p.perIp)).filter(Boolean).length);
}

/** How far phase `i` may move, and spread out, before the model's answer changes (ms). */
function tolerance(i) {
  const base = expectedPerPhase().join();
  const at = (f) => { const a = []; a[i] = f; return a; };
  const holds = (opts) => expectedPerPhase(opts).join() === base;
  const widest = (ok) => { let d = 0; while (d < 5000 && ok(d + 10)) d += 10; return d; };
  const prevAt = PHASES[i - 1]?.at ?? -Infinity;
  return {
    earlier_ms: i === 0 ? null : widest((d) => PHASES[i].at - d > prevAt && holds({ shift: at(-d) })),
    later_ms: widest((d) => holds({ shift: at(d) })),
    spread_ms: widest((d) => holds({ spread: at(d) }) && holds({ spread: at(d), lateOne: false })),
  };
}

// ---------------------------------------------------------------------------------------------

const tokenCall = (gh, ip) =>
  fetch(`${gh.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": ip },
    body: "grant_type=client_credentials&client_id=nobody&client_secret=x",
  });

const sleepUntil = (t) => new Promise((ok) => setTimeout(ok, Math.max(0, t - performance.now())));
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x) => Number(x.toFixed(3));

const tierVars = {
  GATEHOUSE_RATE_LIMIT_RPS: String(TIERS[0].rate),
  GATEHOUSE_RATE_LIMIT_BURST: String(TIERS[0].burst),
  GATEHOUSE_RATE_LIMIT_RPM: String(TIERS[1].rate),
  GATEHOUSE_RATE_LIMIT_RPM_BURST: String(TIERS[1].burst),
};
const [limited, on, off] = await Promise.all([
  startGatehouse({ vars: tierVars }),
  startGatehouse({
    vars: {
      GATEHOUSE_RATE_LIMIT_RPS: "1000000",
      GATEHOUSE_RATE_LIMIT_BURST: "1000000",
      GATEHOUSE_RATE_LIMIT_RPM: "1000000",
      GATEHOUSE_RATE_LIMIT_RPM_BURST: "1000000",
    },
  }),
  startGatehouse({ vars: { GATEHOUSE_RATE_LIMIT_RPS: "0" } }),
]);

const result = { date: new Date().toISOString(), quick, ips: IPS.length, tiers: TIERS, phases: [] };
try {
  // Warm the isolates (not the limited instance's counters: every IP there starts fresh).
  for (const gh of [limited, on, off]) await (await fetch(`${gh.url}/healthz`)).arrayBuffer();

  // 1. Accuracy
  const expected = expectedPerPhase();
  const start = performance.now();
  let totalAllowed = 0, totalExpected = 0;
  for (const [i, phase] of PHASES.entries()) {
    // Each IP's requests go out together; IPs are staggered so the machine serves each burst
    // quickly (the model is per IP, so each IP's clock starts at its own offset).
    const perIp = await Promise.all(
      IPS.map(async (ip, k) => {
        const due = start + phase.at + k * STAGGER_MS;
        await sleepUntil(due);
        const t0 = performance.now();
        const res = await Promise.all(Array.from({ length: phase.perIp }, () => tokenCall(limited, ip)));
        await Promise.all(res.map((r) => r.arrayBuffer()));
        const bad = res.filter((r) => r.status !== 401 && r.status !== 429);
        if (bad.length) throw new Error(`unexpected status ${bad[0].status}`);
        return { allowed: res.filter((r) => r.status !== 429).length, late: t0 - due, span: performance.now() - t0 };
      }),
    );
    const allowed = perIp.reduce((a, r) => a + r.allowed, 0);
    const exp = expected[i] * IPS.length;
    const [late, span] = [Math.max(...perIp.map((r) => r.late)), Math.max(...perIp.map((r) => r.span))];
    totalAllowed += allowed;
    totalExpected += exp;
    const tol = tolerance(i);
    result.phases.push({
      at_ms: phase.at, sent: phase.perIp * IPS.length, allowed, expected: exp, error: allowed - exp,
      allowed_per_ip: perIp.map((r) => r.allowed), max_start_delay_ms: ms(late), max_span_ms: ms(span),
      model_tolerance: tol,
    });
    console.log(
      `phase ${i + 1} @${String(phase.at).padStart(5)} ms: sent ${String(phase.perIp * IPS.length).padStart(3)}` +
        `  allowed ${String(allowed).padStart(3)}  expected ${String(exp).padStart(3)}  error ${allowed - exp}` +
        `   [per IP: started <=${late.toFixed(0)} ms late, served within ${span.toFixed(0)} ms;` +
        ` the expected count holds for ${tol.later_ms} ms late, ${tol.spread_ms} ms spread]`,
    );
  }
  result.accuracy = { sent: PHASES.reduce((a, p) => a + p.perIp, 0) * IPS.length, allowed: totalAllowed, expected: totalExpected, error: totalAllowed - totalExpected };
  console.log(`accuracy: ${IPS.length} IPs, allowed ${totalAllowed} of ${result.accuracy.sent}, expected ${totalExpected}, error ${totalAllowed - totalExpected}`);

  // 2. Latency: alternate on/off, rotating the simulated IPs (one Durable Object each).
  for (let i = 0; i < 20; i++) {
    for (const gh of [on, off]) await (await tokenCall(gh, IPS[i % IPS.length])).arrayBuffer();
  }
  const lat = { on: [], off: [] };
  for (let i = 0; i < LATENCY_N; i++) {
    const order = i % 2 ? [["on", on], ["off", off]] : [["off", off], ["on", on]];
    for (const [name, gh] of order) {
      const t = performance.now();
      const r = await tokenCall(gh, IPS[i % IPS.length]);
      await r.arrayBuffer();
      const d = performance.now() - t;
      if (r.status !== 401) throw new Error(`latency run: ${name} answered ${r.status}`);
      lat[name].push(d);
    }
  }
  const stat = (xs) => ({ median_ms: ms(quantile(xs, 0.5)), p99_ms: ms(quantile(xs, 0.99)) });
  result.latency = {
    endpoint: "POST /oauth2/token (unknown client: 401)", requests_each: LATENCY_N,
    on: stat(lat.on), off: stat(lat.off),
    added: {
      median_ms: ms(quantile(lat.on, 0.5) - quantile(lat.off, 0.5)),
      p99_ms: ms(quantile(lat.on, 0.99) - quantile(lat.off, 0.99)),
    },
  };
  const L = result.latency;
  console.log(`latency off: median ${L.off.median_ms} ms, p99 ${L.off.p99_ms} ms   (n=${LATENCY_N})`);
  console.log(`latency on:  median ${L.on.median_ms} ms, p99 ${L.on.p99_ms} ms`);
  console.log(`added by the limiter: median ${L.added.median_ms} ms, p99 ${L.added.p99_ms} ms per request`);
} finally {
  await Promise.all([limited.stop(), on.stop(), off.stop()]);
}

mkdirSync(join(ROOT, "bench/results"), { recursive: true });
const file = join(ROOT, "bench/results", `rate_limit-${result.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
console.log(`wrote ${file}`);
if (result.accuracy?.error !== 0) process.exitCode = 1;
