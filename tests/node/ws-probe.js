// A bare WebSocket client (the `ws` package) for tincan's transport tests
// (tests/tests/rtws_transport.rs): connects to URL, optionally with an
// Origin header, optionally sends one message, and prints what happened as
// JSON lines: {"event":"refused","status":404}, {"event":"open"},
// {"event":"close","code":1003}.
//
//   node ws-probe.js URL [--origin ORIGIN] [--text STRING] [--binary BYTES]
//                        [--ca-der FILE]   (wss://: trust only this CA)
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const WebSocket = require("ws");

const [url, ...args] = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const ca = opt("--ca-der") && new crypto.X509Certificate(fs.readFileSync(opt("--ca-der"))).toString();
const ws = new WebSocket(url, { origin: opt("--origin"), perMessageDeflate: false, maxPayload: 64 << 20, ca });
ws.on("unexpected-response", (req, res) => { emit({ event: "refused", status: res.statusCode }); process.exit(0); });
ws.on("open", () => {
  emit({ event: "open" });
  if (opt("--text") !== undefined) ws.send(opt("--text"));
  else if (opt("--binary") !== undefined) ws.send(Buffer.alloc(Number(opt("--binary")), 0x1d));
  else ws.close(1000);
});
ws.on("close", (code) => { emit({ event: "close", code }); process.exit(0); });
ws.on("error", (e) => { emit({ event: "error", error: e.message }); process.exit(1); });
setTimeout(() => { emit({ event: "timeout" }); process.exit(1); }, 10000);
