// Loads protected applications from a JSON file into Gatehouse through the admin API, creating
// or replacing each by its `id` (PUT), so running it again at every deploy is safe.
// Usage: GATEHOUSE_ADMIN_TOKEN=... node scripts/load-apps.mjs <gatehouse-url> <apps.json>
// (locally the token is read from .dev.vars when the variable is unset).
import { existsSync, readFileSync } from "node:fs";

const [base, file] = process.argv.slice(2);
if (!base || !file) {
  console.error("usage: node scripts/load-apps.mjs <gatehouse-url> <apps.json>");
  process.exit(2);
}
let token = process.env.GATEHOUSE_ADMIN_TOKEN;
if (!token && existsSync(".dev.vars")) {
  token = readFileSync(".dev.vars", "utf8").match(/^GATEHOUSE_ADMIN_TOKEN="?([^"\n]+)"?$/m)?.[1];
}
if (!token) {
  console.error("GATEHOUSE_ADMIN_TOKEN is not set");
  process.exit(2);
}
const apps = JSON.parse(readFileSync(file, "utf8"));
if (!Array.isArray(apps)) {
  console.error(`${file}: expected a JSON array of apps`);
  process.exit(2);
}
let failed = 0;
for (const app of apps) {
  if (!app.id) {
    console.error(`an app without "id" cannot be loaded idempotently: ${JSON.stringify(app.name)}`);
    failed++;
    continue;
  }
  const r = await fetch(`${base.replace(/\/$/, "")}/admin/api/apps/${encodeURIComponent(app.id)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(app),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status === 200 || r.status === 201) {
    console.log(`${r.status === 201 ? "created" : "updated"} ${app.id}: ${body.host}${body.path_prefix} -> ${body.origin}`);
  } else {
    console.error(`${app.id}: ${r.status} ${body.error ?? ""} ${body.error_description ?? ""}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
