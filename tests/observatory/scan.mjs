// Grades Gatehouse pages with the MDN HTTP Observatory's own retriever, tests and grader, and
// prints one JSON line per page. The package's `scan()` always uses port 443, so this calls
// the same pieces with the port (its `retrieve()` takes `httpsPort`/`httpPort`/`path`).
// Usage: NODE_EXTRA_CA_CERTS=<cert> [SCAN_COOKIE=<cookie header>] node scan.mjs <httpsPort> <path>...
// SCAN_COOKIE is sent with every request, as the browser that started a sign-in flow would
// (a flow's pages answer only the browser bound to it).
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { retrieve } from "@mdn/mdn-http-observatory/src/retriever/retriever.js";
import { ALL_TESTS } from "@mdn/mdn-http-observatory/src/constants.js";
import { MINIMUM_SCORE_FOR_EXTRA_CREDIT } from "@mdn/mdn-http-observatory/src/grader/charts.js";
import { getGradeForScore, getScoreModifier } from "@mdn/mdn-http-observatory/src/grader/grader.js";

// The package's postinstall (skipped: it downloads from outside the registry) would fetch the
// HSTS preload list. An empty list means "no host is preloaded": 127.0.0.1 is not, and the
// list can only ever earn credit, so leaving it empty never flatters the grade.
const preload = join(dirname(fileURLToPath(import.meta.resolve("@mdn/mdn-http-observatory/src/analyzer/hsts.js"))), "../../conf/hsts-preload.json");
if (!existsSync(preload)) writeFileSync(preload, "{}\n");

const [port, ...paths] = process.argv.slice(2);
for (const path of paths) {
  try {
    // httpPort 9 (discard): nothing listens, so the scan sees an https-only site.
    // The retriever's own Accept header, plus the cookie when there is one.
    const headers = ["Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"];
    if (process.env.SCAN_COOKIE) headers.push(`Cookie: ${process.env.SCAN_COOKIE}`);
    const r = await retrieve("127.0.0.1", { httpsPort: Number(port), httpPort: 9, path, headers });
    if (!r.responses.auto) throw new Error("the site seems to be down");
    const { status } = r.responses.auto;
    if (status < 200 || (status >= 400 && ![401, 403].includes(status))) throw new Error(`status ${status}`);
    // Scoring exactly as the package's scanner/index.js does it.
    const results = ALL_TESTS.map((t) => t(r));
    let withExtra = 100, uncurved = 100;
    const failed = [];
    for (const res of results) {
      if (!res.result) continue;
      const m = getScoreModifier(res.result);
      withExtra += m;
      if (m < 0) uncurved += m;
      if (!res.pass) failed.push(`${res.constructor.name}: ${res.result}`);
    }
    const score = uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? withExtra : uncurved;
    const { grade } = getGradeForScore(score);
    console.log(JSON.stringify({ path, status, grade, score, failed }));
  } catch (e) {
    console.log(JSON.stringify({ path, error: String(e?.message ?? e) }));
  }
}
