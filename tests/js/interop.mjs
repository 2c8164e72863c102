// Interop client: the stock JS automerge-repo (with its WebSocket client
// adapter) against our sync server, as any off-the-shelf client would use it.
//
//   node interop.mjs create --base http://127.0.0.1:PORT --user cadre01 --year Y --id ID [--password P]
//     Logs in, creates the user's diary for year Y at document id ID (the
//     server accepts a new document only at the id derived from its owner,
//     kind and year; the caller works it out) in our schema (one visit and
//     one petition raised in it, with its "created" event), makes a second
//     edit (appends to the visit's notes, adds a visit), then a third (notes
//     progress on the petition: a "progress_noted" event), waits until a
//     fresh client can read every edit back from the server, and prints
//     {"url", "documentId", "visitIds": [...], "petitionId", "owner",
//      "visits": {...}, "petitions": {...}, ...} as JSON on stdout.
//
//   node interop.mjs read --base http://127.0.0.1:PORT --user cadre01 --url automerge:ID
//     Opens the document and prints {"owner", "kind", "year", "visits": {...},
//     "petitions": {...}},
//     or {"unavailable": true} when the server answers doc-unavailable.
//
// Diagnostics go to stderr; a failure exits with status 1.

import { randomUUID } from "node:crypto";
import { from, save, updateText } from "@automerge/automerge";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

// The whole run must finish well within the Rust test's own timeout.
const DEADLINE_MS = 60_000;
// The same fixed time the Rust harness uses, so documents are comparable.
const AT = 1_780_000_000_000;
// When the petition's progress is noted: an hour later, so its event sorts
// after the "created" one.
const PROGRESS_AT = AT + 3_600_000;

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  const args = { mode, password: "demo-pass" };
  for (let i = 0; i < rest.length; i += 2) {
    if (!rest[i].startsWith("--") || rest[i + 1] === undefined) {
      throw new Error(`bad argument ${rest[i]}`);
    }
    args[rest[i].slice(2)] = rest[i + 1];
  }
  for (const required of ["base", "user"]) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

async function login(base, username, password) {
  const response = await fetch(`${base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password, device_id: "js-interop" }),
  });
  if (!response.ok) throw new Error(`login of ${username}: HTTP ${response.status}`);
  const tokens = await response.json();
  return tokens.access_token;
}

function connect(base, token) {
  const ws = base.replace(/^http/, "ws");
  const adapter = new WebSocketClientAdapter(
    `${ws}/api/v1/sync?token=${encodeURIComponent(token)}`,
  );
  const repo = new Repo({
    network: [adapter],
    peerId: `js-interop-${randomUUID()}`,
    // A client, not a server: it may offer every document it has.
    sharePolicy: async () => true,
  });
  return { repo, adapter };
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function newVisit(user, place, subject, notes) {
  return {
    kind: "home_visit",
    at: AT,
    place,
    subject_kind: "household",
    subject_name: subject,
    tags: {},
    participants: { [user]: true },
    notes,
    aid_fen: 0,
    resolved_on_spot: [],
    petition_ids: {},
    card_ids: {},
    created_at: AT,
    created_by: user,
  };
}

// A petition in our schema (sync-core's diary layout), raised in `visitId`,
// with its "created" event: responsible = the user, village level, a deadline.
function newPetition(user, visitId) {
  return {
    visit_id: visitId,
    applicant_name: "王秀英",
    matter: "屋顶漏雨，申请危房改造补助",
    category: "practical_difficulty",
    created_at: AT,
    created_by: user,
    events: [
      {
        id: randomUUID(),
        at: AT,
        by: user,
        type: "created",
        responsible: user,
        level: "village",
        deadline: "2026-06-30",
      },
    ],
  };
}

// Reads the document from the server with a brand-new client (no local
// copy), so what it sees is what the server stored.
async function readFromServer(base, token, url) {
  const { repo } = connect(base, token);
  try {
    const handle = await withTimeout(repo.find(url), 10_000, `find ${url}`);
    return handle.doc();
  } finally {
    await repo.shutdown();
  }
}

function summary(doc) {
  const visits = {};
  for (const [id, v] of Object.entries(doc.visits ?? {})) {
    visits[id] = {
      kind: String(v.kind),
      at: Number(v.at),
      place: String(v.place),
      subject_name: String(v.subject_name),
      notes: String(v.notes),
      created_by: String(v.created_by),
    };
  }
  const petitions = {};
  for (const [id, p] of Object.entries(doc.petitions ?? {})) {
    petitions[id] = {
      applicant_name: String(p.applicant_name),
      matter: String(p.matter),
      category: String(p.category),
      created_by: String(p.created_by),
      events: (p.events ?? []).map((e) => ({ id: String(e.id), type: String(e.type) })),
    };
  }
  return {
    owner: String(doc.owner),
    kind: String(doc.kind),
    year: Number(doc.year),
    schema: Number(doc.schema),
    visits,
    petitions,
  };
}

async function create(args, token) {
  const { repo } = connect(args.base, token);
  const first = randomUUID();
  const second = randomUUID();
  const petition = randomUUID();
  const progress = randomUUID();
  const visit = newVisit(args.user, "柳树村3组", "王秀英", "JS客户端记录");
  visit.petition_ids = { [petition]: true };
  if (!args.id || !args.year) throw new Error("--id and --year are required");
  const initial = from({
    schema: 1,
    kind: "diary",
    owner: args.user,
    year: Number(args.year),
    created_at: AT,
    visits: { [first]: visit },
    petitions: { [petition]: newPetition(args.user, first) },
  });
  const handle = repo.import(save(initial), { docId: args.id });
  handle.change((d) => {
    updateText(d, ["visits", first, "notes"], "JS客户端记录（已电话回访）");
    d.visits[second] = newVisit(args.user, "柳树村5组", "李建国", "第二次编辑");
  });
  // An append-only event, in a change of its own (as our client records one).
  handle.change((d) => {
    d.petitions[petition].events.push({
      id: progress,
      at: PROGRESS_AT,
      by: args.user,
      type: "progress_noted",
      note: "已联系镇住建办现场查看",
    });
  });
  const url = handle.url;

  // Done when a fresh client reads every edit back from the server.
  let seen;
  for (;;) {
    try {
      seen = await readFromServer(args.base, token, url);
      const events = seen?.petitions?.[petition]?.events ?? [];
      if (
        seen?.visits?.[second] &&
        String(seen.visits[first].notes).includes("已电话回访") &&
        events.some((e) => String(e.id) === progress)
      ) {
        break;
      }
    } catch (e) {
      console.error(`not on the server yet: ${e.message}`);
    }
    await sleep(200);
  }
  await repo.shutdown();
  return {
    ...summary(seen),
    url,
    documentId: url.replace(/^automerge:/, ""),
    visitIds: [first, second],
    petitionId: petition,
  };
}

async function read(args, token) {
  if (!args.url) throw new Error("--url is required");
  try {
    return summary(await readFromServer(args.base, token, args.url));
  } catch (e) {
    // What automerge-repo reports for doc-unavailable: the caller asserts it.
    if (/unavailable/.test(e.message)) return { unavailable: true };
    throw e;
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const token = await login(args.base, args.user, args.password);
  let result;
  if (args.mode === "create") result = await create(args, token);
  else if (args.mode === "read") result = await read(args, token);
  else throw new Error(`unknown mode ${args.mode} (create or read)`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

const timer = setTimeout(() => {
  console.error(`interop.mjs: gave up after ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);
main().then(
  () => {
    clearTimeout(timer);
    // Sockets may linger after shutdown; the result is written.
    process.exit(0);
  },
  (e) => {
    console.error(`interop.mjs: ${e.stack ?? e}`);
    process.exit(1);
  },
);
