// Signs a webhook body the way a provider does, with the provider's own published library, and
// prints the headers it would send as one JSON object.
//
//     NODE_PATH=.state/sdk/node/node_modules node signatures.mjs PROVIDER SECRET TIMESTAMP < body
//
// PROVIDER is github (@octokit/webhooks-methods' sign) or standard_webhooks (the standardwebhooks
// package's Webhook.sign, as Svix and others send). TIMESTAMP is Unix seconds.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// An ES module ignores NODE_PATH: resolve from the installed packages' directory instead.
const modules = process.env.NODE_PATH;
const require = createRequire(join(modules, "resolve.cjs"));
const [provider, secret, timestamp] = process.argv.slice(2);
const body = readFileSync(0, "utf8");
let headers;
if (provider === "github") {
  const { sign } = await import(
    pathToFileURL(join(modules, "@octokit/webhooks-methods/dist-node/index.js")).href
  );
  headers = { "X-Hub-Signature-256": await sign(secret, body) };
} else if (provider === "standard_webhooks") {
  const { Webhook } = require("standardwebhooks");
  const id = `msg_${timestamp}`;
  const signature = new Webhook(secret).sign(id, new Date(Number(timestamp) * 1000), body);
  headers = { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature };
} else {
  console.error(`unknown provider ${provider}`);
  process.exit(1);
}
console.log(JSON.stringify(headers));
