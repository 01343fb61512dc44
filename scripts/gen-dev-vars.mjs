// Prints a .dev.vars file: random cookie secret, admin token and sealing key (TOTP seeds), and a private key set
// (RSA-2048 for RS256 first, P-256 for ES256) as base64 of the PEM text.
import { generateKeyPairSync, randomBytes } from "node:crypto";

const pem = (type, opts) =>
  generateKeyPairSync(type, opts).privateKey.export({ type: "pkcs8", format: "pem" });
const keys = pem("rsa", { modulusLength: 2048 }) + pem("ec", { namedCurve: "P-256" });
const out = [
  `GATEHOUSE_COOKIE_SECRET="${randomBytes(32).toString("base64url")}"`,
  `GATEHOUSE_ADMIN_TOKEN="${randomBytes(32).toString("base64url")}"`,
  `GATEHOUSE_SEALING_KEY="${randomBytes(32).toString("base64url")}"`,
  `GATEHOUSE_PRIVATE_KEY="${Buffer.from(keys).toString("base64")}"`,
];
process.stdout.write(out.join("\n") + "\n");
