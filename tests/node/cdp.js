// Drives a running headless Chromium over the DevTools protocol (with the
// `ws` package) for tincan's browser tests (tests/tests/rtws_browser.rs):
// opens URL in a new tab with INIT run before the page's own scripts, then
// evaluates POLL every 250 ms until it returns an object with `done: true`
// or TIMEOUT seconds pass. Prints POLL's last value as one JSON line and
// exits 0 if it was done, 1 otherwise.
//
//   node cdp.js BROWSER_WS_URL URL INIT POLL TIMEOUT_SECS
"use strict";
const WebSocket = require("ws");

const [browserUrl, url, init, poll, timeoutSecs] = process.argv.slice(2);
const ws = new WebSocket(browserUrl, { perMessageDeflate: false });
let nextId = 1;
const pending = new Map();
const logs = [];

function send(method, params = {}, sessionId) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params, sessionId }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

ws.on("message", (raw) => {
  const m = JSON.parse(raw);
  if (m.id && pending.has(m.id)) {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p.reject(new Error(JSON.stringify(m.error)));
    else p.resolve(m.result);
  } else if (m.method === "Runtime.consoleAPICalled" && logs.length < 200) {
    logs.push(m.params.args.map((a) => a.value ?? a.description ?? a.type).join(" "));
  } else if (m.method === "Runtime.exceptionThrown" && logs.length < 200) {
    logs.push("exception: " + JSON.stringify(m.params.exceptionDetails.exception?.description ?? m.params.exceptionDetails.text));
  }
});

async function main() {
  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  await send("Page.enable", {}, sessionId);
  await send("Runtime.enable", {}, sessionId);
  await send("Page.addScriptToEvaluateOnNewDocument", { source: init }, sessionId);
  await send("Page.navigate", { url }, sessionId);
  const deadline = Date.now() + Number(timeoutSecs) * 1000;
  let last = null;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const r = await send("Runtime.evaluate", { expression: poll, returnByValue: true, awaitPromise: true }, sessionId);
    if (r.exceptionDetails) { last = { error: r.exceptionDetails.exception?.description ?? r.exceptionDetails.text }; continue; }
    last = r.result.value;
    if (last && last.done) break;
  }
  process.stdout.write(JSON.stringify({ result: last, console: logs }) + "\n");
  await send("Target.closeTarget", { targetId }).catch(() => {});
  process.exit(last && last.done ? 0 : 1);
}

ws.on("open", () => main().catch((e) => { console.error(e); process.exit(2); }));
ws.on("error", (e) => { console.error("DevTools connection failed:", e.message); process.exit(2); });
