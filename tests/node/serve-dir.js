// A static file server on a free loopback port, for pages a browser test
// loads over http://127.0.0.1 (a secure context, as WebCodecs needs):
// prints the port on stdout, then serves DIR (files only, no listing)
// until killed.
//
//   node serve-dir.js DIR
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");

const root = path.resolve(process.argv[2] || ".");
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
const server = http.createServer((req, res) => {
  const rel = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const file = path.resolve(root, "." + rel);
  if (!file.startsWith(root + path.sep)) { res.writeHead(403).end(); return; }
  fs.readFile(file, (err, body) => {
    if (err) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" }).end(body);
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\n"));
