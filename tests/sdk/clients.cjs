// Sends one person's events through a real Node SDK, as an application would.
//
//     node clients.cjs CLIENT HOST WRITE_KEY RUN PHASE
//
// CLIENT is segment-node (@segment/analytics-node: Basic auth and writeKey in the body) or
// rudder-node (@rudderstack/rudder-sdk-node: Basic auth, gzip). RUN and PHASE as in clients.py;
// PHASE "oversize" sends one track of 40 KB and reports how the client ended. Exits 1 if the
// client reported an error (other than the refusal "oversize" expects).

const [client, host, writeKey, run, phase] = process.argv.slice(2);
const errors = [];

const anonymousId = `anon-${client}-${run}`;
const userId = `user-${client}-${run}`;
const oldId = `old-${client}-${run}`;
const email = `${client}-${run}@example.com`;

function segment() {
  const { Analytics } = require("@segment/analytics-node");
  const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 200, maxRetries: 3 });
  analytics.on("error", (error) => errors.push(String(error && (error.reason || error.message || error.code))));
  const send = (method, message) => analytics[method](message);
  return { send, close: () => analytics.closeAndFlush({ timeout: 20000 }) };
}

function rudder() {
  const Analytics = require("@rudderstack/rudder-sdk-node");
  const analytics = new Analytics(writeKey, {
    dataPlaneUrl: host,
    flushAt: 20,
    flushInterval: 200,
    retryCount: 3,
    logLevel: "error",
    errorHandler: (error) => errors.push(String(error && error.message)),
  });
  const send = (method, message) => analytics[method](message);
  const close = () => new Promise((resolve) => analytics.flush((error) => { if (error) errors.push(String(error.message || error)); resolve(); }));
  return { send, close };
}

async function main() {
  const sdk = client === "segment-node" ? segment() : client === "rudder-node" ? rudder() : null;
  if (!sdk) throw new Error(`unknown client ${client}`);
  if (phase === "before") {
    sdk.send("track", { anonymousId, event: "Viewed Pricing", properties: { plan: "pro" } });
    sdk.send("page", { anonymousId, name: "Pricing", properties: { path: "/pricing" } });
    sdk.send("track", { anonymousId: oldId, event: "Visited From Old Device" });
    sdk.send("identify", { userId, anonymousId, traits: { email, name: "Ada" } });
  } else if (phase === "after") {
    sdk.send("track", { userId, anonymousId, event: "Signed Up" });
    sdk.send("screen", { userId, name: "Home" });
    sdk.send("group", { userId, groupId: `group-${run}`, traits: { name: "Acme" } });
    sdk.send("alias", { previousId: oldId, userId });
  } else if (phase === "oversize") {
    sdk.send("track", { userId, event: "Huge", properties: { blob: "x".repeat(40 * 1024) } });
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  await sdk.close();
  if (phase === "oversize") {
    console.log(JSON.stringify({ errors }));
  } else if (errors.length > 0) {
    console.error(errors.join("; "));
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
