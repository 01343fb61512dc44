// The password policy against a real `wrangler dev`, in a real browser: the account page's
// password change refused by each rule (length, a character class, the zxcvbn score from the
// strength Worker behind its service binding, the history, a breached password from a Have I
// Been Pwned stub on loopback, the stub unreachable), then accepted; the
// admin API refusing the same rules; and the stub seeing only 5-character hash prefixes with
// padding asked for. Nothing goes to the real API: GATEHOUSE_HIBP_URL points at the stub.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { startGatehouse } from "./harness.mjs";
import { adminApi, launchChromium, withPage as withPageIn, uniq } from "./helpers.mjs";

const BREACHED = "Password breached 1234";
const sha1 = (s) => createHash("sha1").update(s, "utf8").digest("hex").toUpperCase();

let gh, admin, browser, hibp, hibpUrl;
const seen = [];
let hibpDown = false;

before(async () => {
  // A range API stand-in: the breached password's suffix with a count, and padding lines
  // (count 0) as the real API sends with `Add-Padding: true`.
  hibp = createServer((req, res) => {
    seen.push({ url: req.url, padding: req.headers["add-padding"] });
    if (hibpDown) {
      res.writeHead(503).end();
      return;
    }
    const m = /^\/range\/([0-9A-F]{5})$/.exec(req.url);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const lines = ["0018A45C4D1DEF81644B54AB7F969B88D65:0", "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0"];
    const hash = sha1(BREACHED);
    if (hash.startsWith(m[1])) lines.push(`${hash.slice(5)}:73`);
    res.writeHead(200, { "content-type": "text/plain" }).end(lines.join("\r\n"));
  });
  await new Promise((ok) => hibp.listen(0, "127.0.0.1", ok));
  hibpUrl = `http://127.0.0.1:${hibp.address().port}`;
  gh = await startGatehouse({
    strength: true,
    vars: {
      GATEHOUSE_HIBP_URL: hibpUrl,
      GATEHOUSE_PASSWORD_MIN_DIGITS: "1",
      GATEHOUSE_PASSWORD_HISTORY: "3",
    },
  });
  admin = adminApi(gh);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await gh?.stop();
  await new Promise((ok) => (hibp ? hibp.close(ok) : ok()));
});

const withPage = (fn) => withPageIn(browser, fn);

async function submit(page, selector = 'button[type="submit"]') {
  await Promise.all([page.waitForLoadState("load"), page.click(selector)]);
}

async function signIn(page, user) {
  assert.equal(new URL(page.url()).pathname, "/oauth2/login");
  await page.fill('input[name="username"]', user.username);
  await page.fill('input[name="password"]', user.password);
  await submit(page);
}

test("the account page refuses a password by each rule, saying which, then accepts a good one", async () => {
  const user = await admin.createUser();
  const firstSeen = seen.length;
  await withPage(async (page) => {
    await page.goto(`${gh.url}/account`);
    await signIn(page, user);
    assert.equal(new URL(page.url()).pathname, "/account");
    await submit(page, "#change-password");
    await signIn(page, user);
    assert.equal(new URL(page.url()).pathname, "/oauth2/password");
    assert.match(await page.textContent("#password-rules"), /15 to 256 characters, with at least a digit\./);
    const attempt = async (password) => {
      await page.fill("#new-password", password);
      await page.fill("#confirm-password", password);
      // Past the browser's own minlength check: the server's answer is what is tested.
      await page.evaluate(() => document.querySelectorAll("input[minlength]").forEach((i) => i.removeAttribute("minlength")));
      await submit(page);
      return (await page.textContent("#new-password-error")).trim();
    };
    assert.equal(await attempt("short 1"), "The password must be at least 15 characters long.");
    assert.equal(await attempt("no digits in this passphrase"), "The password must contain a digit.");
    // zxcvbn, in the strength Worker: the user's own username makes a long password guessable.
    assert.match(await attempt(`${user.username} ${user.username} 1`), /^This password is too easy to guess\./);
    assert.match(await attempt("qwertyuiop1234567890"), /^This password is too easy to guess\./);
    assert.equal(await attempt(user.password), "The password must differ from your last 3 passwords.");
    assert.match(await attempt(BREACHED), /appeared in a data breach/);
    hibpDown = true;
    assert.match(await attempt("violet tractor umbrella 2"), /could not be checked just now/);
    hibpDown = false;
    await page.fill("#new-password", "violet tractor umbrella 2");
    await page.fill("#confirm-password", "violet tractor umbrella 2");
    await Promise.all([page.waitForURL((u) => u.pathname === "/account"), page.click('button[type="submit"]')]);
    assert.match(await page.textContent("body"), /Your password was changed/);
  });
  // Only hash prefixes reached the stub, each with padding asked for; never a password or suffix.
  const asked = seen.slice(firstSeen);
  assert.equal(asked.length, 3, JSON.stringify(asked));
  for (const { url, padding } of asked) {
    assert.match(url, /^\/range\/[0-9A-F]{5}$/);
    assert.equal(padding, "true");
  }
  assert.equal(asked[0].url, `/range/${sha1(BREACHED).slice(0, 5)}`);
  assert.equal(asked[2].url, `/range/${sha1("violet tractor umbrella 2").slice(0, 5)}`);
  // The new password signs in; the previous one does not.
  await withPage(async (page) => {
    await page.goto(`${gh.url}/account`);
    await signIn(page, { ...user, password: "violet tractor umbrella 2" });
    assert.equal(new URL(page.url()).pathname, "/account");
  });
});

test("the admin API refuses the same rules with RFC 6749-shaped errors", async () => {
  const create = (password) => admin.call("POST", "/admin/api/users", { username: uniq("p"), email: "p@example.test", password });
  const short = await create("short 1");
  assert.equal(short.status, 400);
  assert.equal(short.json.error, "invalid_request");
  assert.equal(short.json.error_description, "The password must be at least 15 characters long.");
  const breached = await create(BREACHED);
  assert.equal(breached.status, 400);
  assert.match(breached.json.error_description, /data breach/);
  assert.ok(!breached.text.includes(BREACHED));
  hibpDown = true;
  const down = await create("violet tractor umbrella 3");
  hibpDown = false;
  assert.equal(down.status, 503);
  assert.equal(down.json.error, "temporarily_unavailable");
  assert.equal((await create("violet tractor umbrella 3")).status, 201);
});
