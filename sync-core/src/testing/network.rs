//! An in-memory network: one server and any number of clients speaking the
//! real protocol over simulated links that can drop, duplicate, delay and
//! reorder frames, and disconnect.
//!
//! The server keeps its documents either live in memory or, like the real
//! server, only in their stored form (see [`ServerMode`]).

use std::collections::{BTreeMap, BTreeSet};

use automerge::Automerge;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::protocol::{
    Access, ClientConnection, Granted, ListedDocument, Message, ProtocolError, ServerConnection,
    ServerStep, SyncStep,
};
use crate::{DocumentId, storage};

/// How the simulated server keeps its documents between messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerMode {
    /// One document per id lives in memory and every message is merged into
    /// it in place; whatever automerge holds in memory survives.
    #[default]
    Live,
    /// Every message, push and server edit starts from the document rebuilt
    /// from its stored snapshot and chunks ([`storage::load`]), stores
    /// [`SyncApplied::chunk`](crate::protocol::SyncApplied::chunk), and
    /// compacts every few chunks ([`storage::snapshot`]): only what was
    /// stored survives, as on a server that reloads or restarts.
    Reload,
}

/// Compact a stored document once it has this many chunks (small, so the
/// tests go through compaction often).
const COMPACT_AFTER_CHUNKS: usize = 4;

/// A document's stored form on the simulated server.
#[derive(Debug, Clone, Default)]
struct Stored {
    snapshot: Option<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
}

/// Fault rates for frames in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Probability a frame is lost.
    pub drop: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a delivery wave is shuffled.
    pub reorder: f64,
    /// Largest extra delay of a frame, in waves.
    pub max_delay: u32,
    /// Probability a client's link breaks in a wave.
    pub disconnect: f64,
}

/// Counts of what crossed the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Frames client → server.
    pub frames_up: usize,
    /// Frames server → client.
    pub frames_down: usize,
    /// Bytes client → server.
    pub bytes_up: usize,
    /// Bytes server → client.
    pub bytes_down: usize,
    /// Delivery waves (one-way trips) until quiescence.
    pub waves: usize,
    /// Times the server stored new changes.
    pub stores: usize,
    /// Received changes the server stored while they waited for their
    /// dependencies.
    pub waiting_changes: usize,
    /// Times the server restarted a document's sync that made no progress.
    pub restarts: usize,
}

/// The network did not settle within the step budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network still busy after {0} waves")]
pub struct Stalled(pub usize);

/// A simulated phone: its documents and, while connected, its connection.
#[derive(Debug)]
pub struct SimClient {
    /// The client's name (also its peer id).
    pub name: String,
    /// Its local documents.
    pub docs: BTreeMap<DocumentId, Automerge>,
    /// Documents it wants to sync besides those it has.
    pub wanted: BTreeSet<DocumentId>,
    /// Whether it asks the server to list its documents in the handshake
    /// ([`ClientConnection::listing`]), as the phone library does.
    pub lists: bool,
    conn: Option<ClientConnection>,
    /// Sync states kept from the last connection, as a phone keeps them.
    saved_states: BTreeMap<DocumentId, Vec<u8>>,
    /// Protocol errors this client's connections ended with.
    pub errors: Vec<ProtocolError>,
}

/// How the server judges one client's documents.
type Policy = Box<dyn Fn(&DocumentId) -> Access>;

/// The simulated server: documents, and one connection per connected client.
pub struct SimServer {
    /// The server's documents. In [`ServerMode::Reload`], the last one
    /// rebuilt from storage: edits made here directly are not stored (use
    /// [`Network::server_edit`]).
    pub docs: BTreeMap<DocumentId, Automerge>,
    store: SimStore,
    conns: BTreeMap<usize, ServerConnection>,
    policies: BTreeMap<usize, Policy>,
    /// Sync states kept per client and document, as the server keeps them per device.
    saved_states: BTreeMap<(usize, DocumentId), Vec<u8>>,
    /// Protocol errors that closed a connection.
    pub errors: Vec<ProtocolError>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("mode", &self.store.mode)
            .field("docs", &self.docs.len())
            .field("conns", &self.conns.len())
            .finish()
    }
}

/// The simulated server's database.
#[derive(Debug)]
struct SimStore {
    mode: ServerMode,
    stored: BTreeMap<DocumentId, Stored>,
}

impl SimStore {
    /// In [`ServerMode::Reload`], replaces the document in `docs` by the one
    /// rebuilt from storage, as the real server does before every merge.
    fn reload(&self, docs: &mut BTreeMap<DocumentId, Automerge>, id: &DocumentId) {
        if self.mode != ServerMode::Reload {
            return;
        }
        match self.stored.get(id) {
            Some(stored) => {
                let doc = storage::load(
                    stored.snapshot.as_deref(),
                    stored.chunks.iter().map(Vec::as_slice),
                )
                .expect("what the simulated server stored loads");
                docs.insert(*id, doc);
            }
            None => {
                docs.remove(id);
            }
        }
    }

    /// The heads of what the server has of a document: its stored form in
    /// [`ServerMode::Reload`], its live copy otherwise.
    fn heads(
        &self,
        docs: &BTreeMap<DocumentId, Automerge>,
        id: &DocumentId,
    ) -> Vec<automerge::ChangeHash> {
        let mut heads = match (self.mode, self.stored.get(id)) {
            (ServerMode::Reload, Some(stored)) => storage::load(
                stored.snapshot.as_deref(),
                stored.chunks.iter().map(Vec::as_slice),
            )
            .expect("what the simulated server stored loads")
            .get_heads(),
            (ServerMode::Reload, None) => Vec::new(),
            (ServerMode::Live, _) => docs.get(id).map(Automerge::get_heads).unwrap_or_default(),
        };
        heads.sort();
        heads
    }

    /// In [`ServerMode::Reload`], appends a chunk to a document's stored
    /// form, compacting it once it has [`COMPACT_AFTER_CHUNKS`] chunks.
    fn store(&mut self, id: DocumentId, chunk: Vec<u8>) {
        if self.mode != ServerMode::Reload {
            return;
        }
        let stored = self.stored.entry(id).or_default();
        stored.chunks.push(chunk);
        if stored.chunks.len() >= COMPACT_AFTER_CHUNKS {
            let doc = storage::load(
                stored.snapshot.as_deref(),
                stored.chunks.iter().map(Vec::as_slice),
            )
            .expect("what the simulated server stored loads");
            *stored = Stored {
                snapshot: Some(storage::snapshot(&doc)),
                chunks: Vec::new(),
            };
        }
    }
}

#[derive(Debug)]
struct Frame {
    client: usize,
    to_server: bool,
    bytes: Vec<u8>,
    due: u64,
}

/// The network: a server, clients, and the frames in flight between them.
#[derive(Debug)]
pub struct Network {
    pub server: SimServer,
    /// The clients, by index.
    pub clients: Vec<SimClient>,
    in_flight: Vec<Frame>,
    rng: ChaCha8Rng,
    /// Current fault rates.
    pub faults: Faults,
    wave: u64,
    stats: NetworkStats,
    pending_push: BTreeSet<DocumentId>,
    /// Every delivered frame, summarised, once [`Self::record_trace`] is on.
    trace: Option<Vec<String>>,
}

impl Network {
    /// An empty network whose server keeps live documents; `seed` makes
    /// faults reproducible.
    pub fn new(seed: u64) -> Self {
        Self::with_mode(seed, ServerMode::Live)
    }

    /// An empty network whose server keeps its documents as `mode` says.
    pub fn with_mode(seed: u64, mode: ServerMode) -> Self {
        Self {
            server: SimServer {
                docs: BTreeMap::new(),
                store: SimStore {
                    mode,
                    stored: BTreeMap::new(),
                },
                conns: BTreeMap::new(),
                policies: BTreeMap::new(),
                saved_states: BTreeMap::new(),
                errors: Vec::new(),
            },
            clients: Vec::new(),
            in_flight: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: Faults::default(),
            wave: 0,
            stats: NetworkStats::default(),
            pending_push: BTreeSet::new(),
            trace: None,
        }
    }

    /// Adds a client whose documents the server judges with `policy`.
    pub fn add_client(
        &mut self,
        name: &str,
        policy: impl Fn(&DocumentId) -> Access + 'static,
    ) -> usize {
        let i = self.clients.len();
        self.clients.push(SimClient {
            name: name.to_owned(),
            docs: BTreeMap::new(),
            wanted: BTreeSet::new(),
            lists: false,
            conn: None,
            saved_states: BTreeMap::new(),
            errors: Vec::new(),
        });
        self.server.policies.insert(i, Box::new(policy));
        i
    }

    /// Starts recording a one-line summary of every frame delivered from now
    /// on ([`Message::summary`]), for tests that show what happened.
    pub fn record_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The frames delivered since [`Self::record_trace`].
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or_default()
    }

    fn note(&mut self, client: usize, to_server: bool, bytes: &[u8]) {
        if let Some(trace) = &mut self.trace {
            let what =
                Message::decode(bytes).map_or_else(|e| format!("malformed: {e}"), |m| m.summary());
            let arrow = if to_server { "->" } else { "<-" };
            trace.push(format!(
                "wave {:>3}  client {client} {arrow} server  {what}",
                self.wave
            ));
        }
    }

    /// What crossed the network since the last [`Self::reset_stats`].
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = NetworkStats::default();
    }

    /// Whether client `i` is connected.
    pub fn is_connected(&self, i: usize) -> bool {
        self.clients.get(i).is_some_and(|c| c.conn.is_some())
    }

    /// Opens a fresh connection for client `i` (syncing all its documents
    /// and the wanted ones); a previous one is closed first.
    pub fn connect(&mut self, i: usize) {
        self.disconnect(i);
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let (mut conn, join) = if c.lists {
            ClientConnection::listing(c.name.clone())
        } else {
            ClientConnection::new(c.name.clone(), None)
        };
        for id in c.docs.keys().chain(c.wanted.iter()) {
            match c.saved_states.get(id) {
                Some(saved) => conn.add_document_with_state(*id, saved),
                None => conn.add_document(*id),
            }
        }
        c.conn = Some(conn);
        self.server
            .conns
            .insert(i, ServerConnection::new("sim-server"));
        self.send(i, true, join.encode());
    }

    /// Breaks client `i`'s link: frames in flight are lost and both ends
    /// forget the connection's sync state.
    pub fn disconnect(&mut self, i: usize) {
        self.in_flight.retain(|f| f.client != i);
        if let Some(c) = self.clients.get_mut(i)
            && let Some(conn) = c.conn.take()
        {
            for id in conn.documents() {
                if let Some(s) = conn.sync_state(id) {
                    c.saved_states.insert(*id, s);
                }
            }
        }
        if let Some(conn) = self.server.conns.remove(&i) {
            for (id, _) in conn.documents() {
                if let Some(s) = conn.sync_state(id) {
                    self.server.saved_states.insert((i, *id), s);
                }
            }
        }
    }

    /// Sends raw bytes from client `i` to the server, as a broken or hostile
    /// client would.
    pub fn inject(&mut self, i: usize, bytes: Vec<u8>) {
        self.in_flight.push(Frame {
            client: i,
            to_server: true,
            bytes,
            due: self.wave,
        });
    }

    fn send(&mut self, client: usize, to_server: bool, bytes: Vec<u8>) {
        let f = self.faults;
        if to_server {
            self.stats.frames_up += 1;
            self.stats.bytes_up += bytes.len();
        } else {
            self.stats.frames_down += 1;
            self.stats.bytes_down += bytes.len();
        }
        if f.drop > 0.0 && self.rng.random_bool(f.drop.min(1.0)) {
            return;
        }
        let copies = if f.duplicate > 0.0 && self.rng.random_bool(f.duplicate.min(1.0)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if f.max_delay > 0 {
                self.rng.random_range(0..=f.max_delay)
            } else {
                0
            };
            self.in_flight.push(Frame {
                client,
                to_server,
                bytes: bytes.clone(),
                // `step` has already advanced the wave: due now means the next step.
                due: self.wave + u64::from(delay),
            });
        }
    }

    /// Delivers one wave of due frames and sends what the peers answer.
    /// Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let (mut due, rest): (Vec<Frame>, Vec<Frame>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|f| f.due <= self.wave);
        self.in_flight = rest;
        self.wave += 1;
        if self.faults.reorder > 0.0 && self.rng.random_bool(self.faults.reorder.min(1.0)) {
            due.shuffle(&mut self.rng);
        }
        let mut active = !due.is_empty();
        let mut changed = std::mem::take(&mut self.pending_push);
        for frame in due {
            self.note(frame.client, frame.to_server, &frame.bytes);
            if frame.to_server {
                self.deliver_to_server(frame.client, &frame.bytes, &mut changed);
            } else {
                self.deliver_to_client(frame.client, &frame.bytes);
            }
        }
        // The server pushes documents that changed to every connection that
        // syncs them; each client sends what it has to say.
        for id in &changed {
            self.server.store.reload(&mut self.server.docs, id);
        }
        let mut out = Vec::new();
        for (i, conn) in &mut self.server.conns {
            for id in &changed {
                if let Some(doc) = self.server.docs.get(id)
                    && let Some(m) = conn.push(id, doc)
                {
                    out.push((*i, false, m.encode()));
                }
            }
        }
        for (i, c) in self.clients.iter_mut().enumerate() {
            if let Some(conn) = &mut c.conn {
                for m in conn.poll(&c.docs) {
                    out.push((i, true, m.encode()));
                }
            }
        }
        active |= !out.is_empty();
        for (i, up, bytes) in out {
            self.send(i, up, bytes);
        }
        if self.faults.disconnect > 0.0 {
            for i in 0..self.clients.len() {
                if self.is_connected(i) && self.rng.random_bool(self.faults.disconnect.min(1.0)) {
                    self.disconnect(i);
                    active = true;
                }
            }
        }
        active || !self.in_flight.is_empty()
    }

    /// Steps until nothing is in flight and nobody has anything to send.
    pub fn run_until_quiescent(&mut self, max_waves: usize) -> Result<NetworkStats, Stalled> {
        for _ in 0..max_waves {
            if !self.step() {
                return Ok(self.stats);
            }
            self.stats.waves += 1;
        }
        Err(Stalled(max_waves))
    }

    fn deliver_to_server(&mut self, i: usize, bytes: &[u8], changed: &mut BTreeSet<DocumentId>) {
        let result = self.server_handle(i, bytes, changed);
        match result {
            Ok(replies) => {
                for r in replies {
                    self.send(i, false, r.encode());
                }
            }
            Err(e) => {
                // Like a real server: report the error and close this
                // connection only.
                self.send(i, false, ServerConnection::error_message(&e).encode());
                self.server.errors.push(e);
                self.server.conns.remove(&i);
            }
        }
    }

    fn server_handle(
        &mut self,
        i: usize,
        bytes: &[u8],
        changed: &mut BTreeSet<DocumentId>,
    ) -> Result<Vec<Message>, ProtocolError> {
        let Some(conn) = self.server.conns.get_mut(&i) else {
            return Ok(vec![]);
        };
        let message = Message::decode(bytes)?;
        let deny = |_: &DocumentId| Access::None;
        let policy: &dyn Fn(&DocumentId) -> Access = match self.server.policies.get(&i) {
            Some(p) => p.as_ref(),
            None => &deny,
        };
        // As the server does: the connection asks, the policy answers.
        let SyncStep {
            document_id,
            message,
            is_request,
            ..
        } = match conn.handle(message)? {
            ServerStep::Reply(m) => return Ok(m),
            ServerStep::Close => {
                self.server.conns.remove(&i);
                return Ok(vec![]);
            }
            // As the server does: the client's documents with the heads of
            // what is stored (in `Live` mode, the live copies).
            ServerStep::List => {
                let ids: BTreeSet<DocumentId> = self
                    .server
                    .docs
                    .keys()
                    .chain(self.server.store.stored.keys())
                    .copied()
                    .filter(|id| policy(id) == Access::ReadWrite)
                    .collect();
                let listed = ids
                    .into_iter()
                    .map(|id| ListedDocument {
                        id,
                        heads: Some(self.server.store.heads(&self.server.docs, &id)),
                    })
                    .collect();
                return Ok(vec![conn.list(listed)?]);
            }
            ServerStep::Sync(step) => step,
            ServerStep::Decide { document_id } => {
                match conn.grant(&document_id, policy(&document_id))? {
                    Granted::Sync(step) => step,
                    Granted::Unavailable(m) => return Ok(vec![m]),
                }
            }
        };
        if let Some(saved) = self.server.saved_states.get(&(i, document_id)) {
            conn.restore_sync_state(&document_id, saved);
        }
        self.server
            .store
            .reload(&mut self.server.docs, &document_id);
        let doc = self.server.docs.entry(document_id).or_default();
        let applied = conn.apply(&document_id, doc, *message)?;
        if let Some(chunk) = applied.chunk(doc) {
            // "Stored durably" before the reply is generated.
            self.stats.stores += 1;
            self.stats.waiting_changes += applied.waiting.len();
            if applied.changes_added > 0 {
                changed.insert(document_id);
            }
            self.server.store.store(document_id, chunk);
        }
        let doc = self.server.docs.entry(document_id).or_default();
        let reply = conn.reply(&document_id, doc, is_request);
        if reply.restarted {
            self.stats.restarts += 1;
        }
        if doc.get_heads().is_empty() && !storage::has_waiting_changes(doc) {
            self.server.docs.remove(&document_id);
        }
        Ok(reply.message.into_iter().collect())
    }

    fn deliver_to_client(&mut self, i: usize, bytes: &[u8]) {
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let Some(conn) = &mut c.conn else {
            return;
        };
        let result = Message::decode(bytes).and_then(|m| conn.handle(m, &mut c.docs));
        if let Err(e) = result {
            c.errors.push(e);
            self.disconnect(i);
        }
    }

    /// Edits a document on the server (as the server does for a supervisor's
    /// action), storing the change; connected clients that sync it get the
    /// change next wave.
    pub fn server_edit<T>(
        &mut self,
        id: &DocumentId,
        f: impl FnOnce(&mut Automerge) -> T,
    ) -> Option<T> {
        self.server.store.reload(&mut self.server.docs, id);
        let doc = self.server.docs.get_mut(id)?;
        let heads_before = doc.get_heads();
        let out = f(doc);
        if doc.get_heads() != heads_before {
            let chunk = doc.save_after(&heads_before);
            self.server.store.store(*id, chunk);
        }
        self.pending_push.insert(*id);
        Some(out)
    }

    /// Whether client `i` considers every document synced or unavailable.
    pub fn client_is_synced(&self, i: usize) -> bool {
        self.clients
            .get(i)
            .and_then(|c| c.conn.as_ref().map(|conn| conn.is_quiescent(&c.docs)))
            .unwrap_or(false)
    }
}
