// Preloaded (node --require) into @modelcontextprotocol/server-everything by scripts/e2e.sh.
// Its streamable HTTP entry point calls app.listen(PORT) with no host, which binds every
// interface; the e2e run must only ever listen on loopback, so a listen() given a bare
// port (or {port} without host) is pinned to 127.0.0.1.
"use strict";
const net = require("node:net");
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && args[0].port !== undefined && !args[0].host) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return orig.apply(this, args);
};
