// node-media-server for scripts/bench-compare: RTMP only, on loopback, on the
// port in NMS_PORT; no HTTP, no web admin, no recording, logs at warn so the
// per-session log lines do not cost it CPU the other servers do not spend.
// Its store lives in the current directory (the run's temp dir).
"use strict";
const NodeMediaServer = require("node-media-server");
const logger = require("node-media-server/src/core/logger.js");

const config = {
  bind: "127.0.0.1",
  rtmp: { port: Number(process.env.NMS_PORT) },
  store: { path: "./data" },
  auth: { play: false, publish: false },
  webadmin: { enable: false },
  record: { auto: false, path: "./record" },
};
const nms = new NodeMediaServer(config, null);
// The constructor sets the level to debug; quiet it afterwards.
logger.level = "warn";
nms.run();
const stop = () => {
  nms.stop().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
