// The reference sync server for benchmarks: the official JS sync stack
// (`@automerge/automerge-repo` with its Node file-system storage and its
// WebSocket server adapter), configured as `@automerge/automerge-repo-sync-server`
// configures it: one repo, storage in a directory, a WebSocket server that
// accepts an upgrade on any path, and a share policy that announces nothing
// (a peer gets a document it asks for or syncs, never others').
//
//   node reference-server.mjs --dir DIR [--port 0]
//     Listens on 127.0.0.1 (port 0: any free port) and prints
//     {"port": N, "pid": P} as one line of JSON once it accepts sockets.
//     Runs until killed. Diagnostics go to stderr.
//
// It has no accounts and no access control: it is here to be measured
// against, never to be deployed.

import http from "node:http";
import os from "node:os";
import { Repo } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { WebSocketServer } from "ws";

function parseArgs(argv) {
  const args = { port: "0" };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  if (!args.dir) throw new Error("--dir is required");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const sockets = new WebSocketServer({ noServer: true });
// Kept alive as long as the process: the repo owns the adapters.
export const repo = new Repo({
  network: [new NodeWSServerAdapter(sockets)],
  storage: new NodeFSStorageAdapter(args.dir),
  peerId: `storage-server-${os.hostname()}`,
  sharePolicy: async () => false,
});

const server = http.createServer((_request, response) => {
  response.writeHead(200, { "content-type": "text/plain" });
  response.end("reference automerge-repo sync server\n");
});
server.on("upgrade", (request, socket, head) => {
  sockets.handleUpgrade(request, socket, head, (ws) => {
    sockets.emit("connection", ws, request);
  });
});
server.listen(Number(args.port), "127.0.0.1", () => {
  const { port } = server.address();
  console.log(JSON.stringify({ port, pid: process.pid }));
});
