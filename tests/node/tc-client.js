// The reference RTWebSocket + TC client (rtws.js, amf0.js, tcmessage.js,
// tcconn.js from the vendor directory, MIT, loaded as they are) run in
// Node with the `ws` package as its WebSocket: a third-party peer for
// tincan's RTWebSocket listener (tests/tests/rtws_interop.rs).
//
//   node tc-client.js VENDOR_DIR play URL STREAM FRAMES TIMEOUT_SECS
//     plays STREAM and prints one JSON line per message received:
//     {"kind":"video","timestamp":..,"key":..,"config":..,"codec":..}
//     {"kind":"audio",...} and {"kind":"status","code":..}; exits 0 after
//     FRAMES coded video frames, 1 at the timeout.
//   node tc-client.js VENDOR_DIR publish URL STREAM FILE.flv
//     publishes the FLV file's audio and video tags in real time, prints
//     status lines and {"kind":"sent","video":N,"audio":M} at the end.
//
// The vendored scripts log with console.log; that goes to stderr here, so
// stdout holds only the JSON lines.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const [vendor, mode, url, stream, ...rest] = process.argv.slice(2);
if (!vendor || !mode || !url || !stream) {
  console.error("usage: tc-client.js VENDOR_DIR play|publish URL STREAM ...");
  process.exit(2);
}

console.log = (...args) => console.error(...args);
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");

globalThis.window = globalThis;
globalThis.WebSocket = require("ws");
for (const file of ["rtws.js", "amf0.js", "tcmessage.js", "tcconn.js"]) {
  const where = path.join(vendor, file);
  if (!fs.existsSync(where)) {
    console.error(`the reference RTWebSocket client is missing: ${where} (set TINCAN_RTWS_VENDOR)`);
    process.exit(2);
  }
  vm.runInThisContext(fs.readFileSync(where, "utf8"), { filename: where });
}
const TC = globalThis.com_zenomt_TCMessage;

let finished = false;

async function main() {
  const conn = new globalThis.com_zenomt_TCConnection();
  conn.onclose = () => { emit({ kind: "closed" }); process.exit(finished ? 0 : 1); };
  conn.onstatus = (e) => emit({ kind: "status", code: (e.detail || e).code, on: "connection" });
  await conn.connect(url, {});
  const s = await conn.createStream();
  if (mode === "play") return play(conn, s, Number(rest[0]), Number(rest[1]));
  if (mode === "publish") return publish(conn, s, rest[0]);
  throw new Error("unknown mode " + mode);
}

function play(conn, s, frames, timeoutSecs) {
  let coded = 0;
  setTimeout(() => { emit({ kind: "timeout", coded }); process.exit(1); }, timeoutSecs * 1000);
  s.onstatus = (e) => emit({ kind: "status", code: (e.detail || e).code });
  s.onvideo = (h) => {
    emit({ kind: "video", timestamp: h.timestamp, key: h.frametype === TC.TC_VIDEO_FRAMETYPE_IDR,
           config: !!h.isConfiguration, coded: !!h.isCodedFrame, codec: h.codec });
    if (h.isCodedFrame && ++coded >= frames) { finished = true; conn.close(); setTimeout(() => process.exit(0), 100); }
  };
  s.onaudio = (h) => emit({ kind: "audio", timestamp: h.timestamp, config: !!h.isConfiguration, codec: h.codec });
  s.play(stream);
}

/** FLV tags: {type, timestamp, data}. */
function* flvTags(buf) {
  if (buf.toString("latin1", 0, 3) !== "FLV") throw new Error("not an FLV file");
  let at = buf.readUInt32BE(5) + 4;
  while (at + 11 <= buf.length) {
    const type = buf[at] & 0x1f;
    const size = buf.readUIntBE(at + 1, 3);
    const timestamp = (buf.readUIntBE(at + 4, 3) | (buf[at + 7] << 24)) >>> 0;
    const data = new Uint8Array(buf.subarray(at + 11, at + 11 + size));
    at += 11 + size + 4;
    if (data.length === size) yield { type, timestamp, data };
  }
}

function publish(conn, s, file) {
  const tags = [...flvTags(fs.readFileSync(file))].filter((t) => t.type === 8 || t.type === 9);
  const sent = { kind: "sent", video: 0, audio: 0 };
  s.onstatus = (e) => {
    const code = (e.detail || e).code;
    emit({ kind: "status", code });
    if (code !== "NetStream.Publish.Start") return;
    const start = Date.now();
    let i = 0;
    const next = () => {
      // Real time: each tag when its timestamp comes due.
      while (i < tags.length && tags[i].timestamp <= Date.now() - start) {
        const t = tags[i++];
        if (t.type === 9) { s.sendVideo(undefined, t.timestamp, t.data); sent.video++; }
        else { s.sendAudio(undefined, t.timestamp, t.data); sent.audio++; }
      }
      if (i < tags.length) return setTimeout(next, 5);
      emit(sent);
      finished = true;
      // Let the last messages and their acks through, then leave.
      setTimeout(() => { s.closeStream(); setTimeout(() => { conn.close(); process.exit(0); }, 500); }, 1000);
    };
    next();
  };
  s.publish(stream, "live");
}

main().catch((e) => { emit({ kind: "error", error: String(e && (e.code || e.message) || e) }); process.exit(1); });
