// Attacks on the issue-10 edge hardening through a real wrangler dev, from an adversarial review
// of it: each was a hole, demonstrated by its test failing, and is closed now.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, request } from "node:http";
import { startGatehouse, freePort } from "./harness.mjs";

const MB = 1024 * 1024;
let gh, port, origin, originPort;

before(async () => {
  originPort = await freePort();
  origin = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ headers: req.headers }));
    });
  });
  await new Promise((ok) => origin.listen(originPort, "127.0.0.1", ok));
  gh = await startGatehouse({ vars: { GATEHOUSE_ISSUER: "http://127.0.0.1:{port}" } });
  port = new URL(gh.url).port;
  const r = await fetch(`${gh.url}/admin/api/apps`, {
    method: "POST",
    headers: { authorization: `Bearer ${gh.secrets.GATEHOUSE_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({
      name: "Open", host: `localhost:${port}`, path_prefix: "/", origin: `http://127.0.0.1:${originPort}`, require_login: false,
    }),
  });
  assert.equal(r.status, 201, await r.text());
});

after(async () => {
  await gh?.stop();
  await new Promise((ok) => origin?.close(ok));
});

/**
 * A POST that declares `contentLength` but sends only `sent` bytes of it and then waits, as a
 * slow (or malicious) uploader does. Resolves to the status once answered, or "no answer" after
 * `waitMs`; `req` is left open for the caller to destroy.
 */
function slowUpload(path, { headers = {}, contentLength, sent, waitMs = 3000 }) {
  return new Promise((ok) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "POST", headers: { ...headers, "content-length": String(contentLength) } },
      (res) => { res.resume(); ok({ status: res.statusCode, req }); },
    );
    req.on("error", () => {});
    req.write(Buffer.alloc(sent, "a"));
    setTimeout(() => ok({ status: "no answer", req }), waitMs);
  });
}

/** Resident memory (KiB) of the workerd process that runs the Worker under this file's wrangler dev. */
function workerRssKib() {
  const rows = execFileSync("ps", ["-eo", "pid=,ppid=,rss=,args="], { encoding: "utf8" })
    .trim().split("\n").map((l) => l.trim().split(/\s+/));
  const mine = new Set([String(process.pid)]);
  for (let i = 0; i < 8; i++) for (const r of rows) if (mine.has(r[1])) mine.add(r[0]);
  // wrangler dev runs two workerd: its proxy on the public port, and the Worker's own runtime
  // (the one with an inspector).
  const worker = rows.filter((r) => mine.has(r[0]) && r[3].endsWith("workerd") && r.includes("serve") && r.some((a) => a.startsWith("--inspector-addr")));
  assert.equal(worker.length, 1, "the Worker's workerd process");
  return Number(worker[0][2]);
}

test("an admin request without the admin token is answered before its body is read", async () => {
  // The 1 MiB admin cap is for the operator's JSON; an anonymous caller must not get to make an
  // isolate hold it (the adapter used to read, and wait for, the whole declared body before the
  // admin API looked at the token).
  for (const auth of [undefined, "Bearer wrong"]) {
    const headers = { "content-type": "application/json" };
    if (auth) headers.authorization = auth;
    const r = await slowUpload("/admin/api/users", { headers, contentLength: 900 * 1024, sent: 100 });
    r.req.destroy();
    assert.equal(r.status, 401, `${auth ?? "no token"}: the isolate waited for ${900} KiB of an unauthenticated body`);
  }
});

test("a hundred slow anonymous admin uploads do not fill an isolate's memory", async () => {
  // A deployed isolate has 128 MB. Each anonymous upload of just under 1 MiB, held open at its
  // last byte, is kept in the isolate (and the Vec it is read into can hold twice that while it
  // grows): about 65 such connections, from one laptop, would exhaust a 128 MB isolate and fail
  // every request in flight on it (the review's finding 1, at a smaller size).
  await new Promise((ok) => setTimeout(ok, 1000));
  const before = workerRssKib();
  const held = await Promise.all(
    Array.from({ length: 100 }, () =>
      slowUpload("/admin/api/users", { headers: { "content-type": "application/json" }, contentLength: MB, sent: MB - 1 })),
  );
  await new Promise((ok) => setTimeout(ok, 1500));
  const grown = (workerRssKib() - before) / 1024;
  for (const h of held) h.req.destroy();
  assert.ok(grown < 48, `the Worker's workerd grew by ${grown.toFixed(0)} MiB for 100 anonymous connections`);
});

test("a body that does not arrive in time is refused with 408, so slow uploads cannot pile up", async () => {
  const started = Date.now();
  const r = await slowUpload("/oauth2/token", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
    contentLength: 60 * 1024,
    sent: 100,
    waitMs: 20_000,
  });
  r.req.destroy();
  assert.equal(r.status, 408);
  assert.ok(Date.now() - started < 15_000, `answered after ${Date.now() - started} ms`);
});
