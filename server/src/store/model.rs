//! Plain data carried in and out of a [`Store`](super::Store).
//!
//! These types are shared by both backends; they derive `sqlx::FromRow`
//! generically, so one definition decodes rows from SQLite and PostgreSQL.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sync_core::DocumentId;
use sync_core::automerge::ChangeHash;

sync_core::text_enum! {
    /// What a user may do. See `design.md`, "Identity and access".
    #[derive(utoipa::ToSchema)]
    Role, "role" {
        /// Reads and writes their own documents only.
        Cadre = "cadre", "干部";
        /// Reads everything in their unit's subtree; acts on petitions
        /// through the API.
        Supervisor = "supervisor", "督导";
        /// Manages users and units.
        Admin = "admin", "管理员";
    }
}

sync_core::text_enum! {
    /// What a stored automerge document holds, as the server classified it
    /// when the document was created (from the client's request or from
    /// sync-core inspecting the first changes). Unlike sync-core's
    /// `DocumentKind` (a document's own `kind` field) it has `Unknown`, kept
    /// for documents the server could not classify so that they are still
    /// stored, never dropped.
    #[derive(utoipa::ToSchema)]
    StoredKind, "document kind" {
        /// One cadre's visits and petitions for one year.
        Diary = "diary", "走访日记";
        /// One cadre's service cards.
        Contacts = "contacts", "民情服务卡";
        /// Not (yet) recognised.
        Unknown = "unknown", "未识别";
    }
}

impl From<sync_core::DocumentKind> for StoredKind {
    fn from(kind: sync_core::DocumentKind) -> Self {
        match kind {
            sync_core::DocumentKind::Diary => StoredKind::Diary,
            sync_core::DocumentKind::Contacts => StoredKind::Contacts,
        }
    }
}

/// A node of the organisation tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Unit {
    /// Database id.
    pub id: i64,
    /// Stable short code used in configuration and on the command line (`town1`).
    pub code: String,
    /// Display name (`一镇`).
    pub name: String,
    /// `None` for a root unit.
    pub parent_id: Option<i64>,
    /// Free text: `county`, `town`, `village`, `corps` (总队), `detachment` (支队),
    /// `brigade` (大队), `squadron` (中队)… Organisations differ, so this is not
    /// an enum; it is for display and statistics only, never for access rules.
    pub kind: String,
}

/// Input of [`Store::create_unit`](super::Store::create_unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnit {
    /// See [`Unit::code`].
    pub code: String,
    /// See [`Unit::name`].
    pub name: String,
    /// Must name an existing unit, or be `None` for a root.
    pub parent_id: Option<i64>,
    /// See [`Unit::kind`].
    pub kind: String,
}

/// A person who logs in.
// Debug is written by hand so the password hash never reaches a log line.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// Database id (the `uid` JWT claim).
    pub id: i64,
    /// Login name (the `sub` JWT claim); unique.
    pub username: String,
    /// Name shown to people (`张伟`).
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// The unit the user belongs to; a supervisor sees this unit's subtree.
    pub unit_id: i64,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// A disabled user cannot log in or refresh tokens.
    pub disabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("unit_id", &self.unit_id)
            .field("password_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Input of [`Store::create_user`](super::Store::create_user).
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// See [`User::username`].
    pub username: String,
    /// See [`User::display_name`].
    pub display_name: String,
    /// See [`User::role`].
    pub role: Role,
    /// Must name an existing unit.
    pub unit_id: i64,
    /// argon2id PHC string (see `auth::password::hash_password`).
    pub password_hash: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("unit_id", &self.unit_id)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// A stored refresh token (only its hash is stored): the token as issued
/// and what became of it. Its issued fields read through
/// ([`Deref`](std::ops::Deref)): `token.family_id`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// Database id.
    pub id: i64,
    /// The token as it was issued.
    #[sqlx(flatten)]
    pub issued: NewRefreshToken,
    /// Set when it was exchanged for a newer token; presenting it again is reuse.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Set when its family was revoked (logout or detected reuse).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::ops::Deref for RefreshToken {
    type Target = NewRefreshToken;

    fn deref(&self) -> &NewRefreshToken {
        &self.issued
    }
}

/// A refresh token as issued: the input of
/// [`Store::insert_refresh_token`](super::Store::insert_refresh_token).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NewRefreshToken {
    /// Whose token it is.
    pub user_id: i64,
    /// Shared by every token descended from one login (a fresh random id
    /// for a new login).
    pub family_id: String,
    /// sha256 (hex) of the opaque token.
    pub token_hash: String,
    /// The device the login came from, or "".
    pub device_id: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// After this instant it is refused.
    pub expires_at: DateTime<Utc>,
}

/// The token that replaces a presented one in
/// [`Store::rotate_refresh_token`](super::Store::rotate_refresh_token). The
/// user, family and device are carried over from the presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReplacement {
    /// sha256 (hex) of the new opaque token.
    pub token_hash: String,
    /// Expiry of the new token.
    pub expires_at: DateTime<Utc>,
    /// How long after a rotation the rotated token may be presented again
    /// and get its successor back (a retry whose first answer was lost),
    /// provided the successor is still unused. Zero: any reuse revokes.
    pub retry_grace: chrono::Duration,
}

/// What happened when a refresh token was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was live: it is now marked rotated and `current` replaces it.
    Rotated {
        /// The presented token, as it was before rotation.
        previous: Box<RefreshToken>,
        /// The newly stored token, in the same family.
        current: Box<RefreshToken>,
    },
    /// The token had been rotated moments ago (within the retry grace) and
    /// its successor, whose hash was presented again as the replacement, is
    /// still unused: the answer to the first presentation was lost. Nothing
    /// is written; `current` is that successor.
    Retried {
        /// The presented token.
        previous: Box<RefreshToken>,
        /// Its existing successor.
        current: Box<RefreshToken>,
    },
    /// The token had already been rotated: someone holds a copy. The whole
    /// family has been revoked (in the same transaction).
    Reused {
        /// The revoked family.
        family_id: String,
        /// Whose family it was.
        user_id: i64,
    },
    /// The token's family was revoked earlier (logout or earlier reuse).
    Revoked,
    /// The token is past its expiry.
    Expired,
}

/// What one user's documents take in the store: what the per-user sync
/// limits count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerUsage {
    /// Documents the user owns.
    pub documents: u64,
    /// Their stored bytes: snapshots plus pending chunks.
    pub bytes: u64,
}

/// The most one user's documents may take in the store, checked by a sync
/// write ([`SyncRecords::owner_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerLimits {
    /// Documents the user may own.
    pub documents: u64,
    /// Bytes their documents may take (snapshots plus pending chunks).
    pub bytes: u64,
}

/// A document's row: everything the server keeps about a document except
/// its content. (sync-core's `DocumentMeta` is something else: the root
/// fields inside the document.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DocumentRow {
    /// automerge-repo document id, stored as its base58check text (the
    /// primary key).
    #[sqlx(try_from = "String")]
    pub id: DocumentId,
    /// What the document holds.
    pub kind: StoredKind,
    /// The cadre the document belongs to.
    pub owner_user_id: i64,
    /// The diary year; `None` for contacts.
    pub year: Option<i32>,
    /// When the first chunk arrived.
    pub created_at: DateTime<Utc>,
    /// When the last chunk arrived.
    pub updated_at: DateTime<Utc>,
    /// Opaque description of the heads the snapshot is at (set by the caller
    /// of [`Store::compact`](super::Store::compact)); `None` when there is no
    /// snapshot yet.
    pub snapshot_heads: Option<String>,
    /// Id of the last chunk stored for the document, 0 for none. A
    /// compaction leaves it as it is: chunk ids only grow, so a chunk above
    /// a copy's [`StoredVersion::last_chunk_id`] is one the copy lacks, and
    /// this equal to it means there is none.
    pub last_chunk_id: i64,
    /// Chunks stored and not yet folded into the snapshot.
    pub pending_chunks: i64,
    /// The heads the last write stored ([`DocumentWrite::heads`]), as the
    /// row keeps them; `None` when not known.
    pub heads: Option<Vec<u8>>,
}

/// One incremental piece of a document, appended by a write.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DocumentChunk {
    /// Increases with every append; chunks apply in `id` order.
    pub id: i64,
    /// Bytes as handed to [`Store::append_changes`](super::Store::append_changes)
    /// (automerge incremental save bytes).
    pub data: Vec<u8>,
}

/// A document's content as stored: the latest snapshot plus the chunks
/// appended after it. Loading the snapshot and then applying every chunk in
/// order gives the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Metadata.
    pub meta: DocumentRow,
    /// Compacted content, if the document was ever compacted.
    pub snapshot: Option<Vec<u8>>,
    /// Chunks not yet folded into the snapshot, in append order.
    pub chunks: Vec<DocumentChunk>,
}

impl StoredDocument {
    /// The stored state this content reflects, for
    /// [`Store::load_document_since`](super::Store::load_document_since).
    pub fn version(&self) -> StoredVersion {
        StoredVersion {
            snapshot_heads: self.meta.snapshot_heads.clone(),
            // The row's, read with the chunks: the last chunk's id when
            // there are chunks, and otherwise the last one folded into the
            // snapshot, which a write based on this version must match.
            last_chunk_id: self.meta.last_chunk_id,
        }
    }
}

/// Which stored state a copy of a document in memory reflects: the snapshot
/// it was built on and the last chunk it applied after that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredVersion {
    /// The snapshot's heads as stored (`DocumentRow::snapshot_heads`).
    pub snapshot_heads: Option<String>,
    /// The id of the last chunk stored when the copy was read or last
    /// written (`DocumentRow::last_chunk_id`, folded into the snapshot or
    /// not); 0 for none. Chunk ids only grow, so every chunk above it is
    /// new to the copy.
    pub last_chunk_id: i64,
}

/// What [`Store::load_document_since`](super::Store::load_document_since)
/// found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSince {
    /// The snapshot is the one the copy was built on: these chunks were
    /// appended after the copy's last (none if it is up to date).
    Added {
        /// The document's row now.
        meta: DocumentRow,
        /// The new chunks, in append order.
        chunks: Vec<DocumentChunk>,
    },
    /// The snapshot changed (another process compacted): the whole stored
    /// form, to rebuild the copy from.
    Whole(StoredDocument),
}

/// How to create a document row when a write is the document's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    /// What the document holds.
    pub kind: StoredKind,
    /// The cadre it belongs to, for ever.
    pub owner_user_id: i64,
    /// Diary year.
    pub year: Option<i32>,
}

/// Input of [`Store::append_changes`](super::Store::append_changes).
///
/// Why plain data and not a hook or a `begin()` returning a transaction: the
/// store owns every SQL statement of both backends, so the conformance suite
/// covers all of them and handlers stay free of backend types. The canonical
/// ledger is a *projection* computed in memory from the merged automerge
/// document before the write; it is plain data too, and so is what a sync
/// connection records of its write ([`SyncRecords`]). All of it is written
/// in the chunk's transaction, so a write is one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWrite {
    /// The document written to.
    pub document_id: DocumentId,
    /// `Some` when the writer may create the document. If the document
    /// already exists its owner must equal `create.owner_user_id`, otherwise
    /// the write fails with `Conflict` (a document id belongs to the user who
    /// created it). `None` (for example a supervisor's change to a cadre's
    /// diary) requires the document to exist, otherwise `NotFound`.
    pub create: Option<NewDocument>,
    /// Incremental automerge changes (for example `Automerge::save_incremental`).
    pub data: Vec<u8>,
    /// Time of the write (becomes `updated_at` and the chunk's `created_at`).
    pub at: DateTime<Utc>,
    /// The ledger rows of the document *after* this write. `Some` replaces
    /// all of the document's rows in the same transaction as the chunk (an
    /// empty projection removes them: a document that cannot be projected
    /// is still stored, with no rows); `None` leaves them as they are.
    pub ledger: Option<crate::ledger::LedgerProjection>,
    /// The automerge actors this write's changes were made with that the
    /// document may not have seen yet, and whom they belong to. Each is
    /// recorded in the same transaction if new; one that already belongs to
    /// another writer (another user, or the server against a device) fails
    /// the whole write with `Conflict`.
    pub actors: Vec<ActorClaim>,
    /// The stored state the writer's copy of the document reflected, when
    /// the write was made on such a copy (a live document). If anything was
    /// stored after it (another server process on the same database wrote
    /// the document, or compacted it), the write fails with
    /// [`StoreError::Stale`](super::StoreError::Stale) and nothing is
    /// stored: the ledger rows it carries were projected without those
    /// changes. `None` writes without the check.
    pub based_on: Option<StoredVersion>,
    /// For a write a device's sync connection made: its audit row and the
    /// device's sync state, written in the same transaction. `None` writes
    /// neither (a caller that audits its write writes its own row).
    pub sync: Option<SyncRecords>,
    /// The document's heads once this write is stored, kept on its row for
    /// a sync's handshake to list ([`Store::list_document_heads`](super::Store::list_document_heads)).
    /// `None` stores that they are not known, and a listing device then
    /// syncs the document as usual: a write never leaves on the row heads
    /// that its changes moved on. Writes made on a live copy get them from
    /// it ([`crate::sync::live::store_write`]).
    pub heads: Option<Vec<ChangeHash>>,
}

/// A document's heads as its row keeps them: the sorted hashes, one after
/// another.
pub(crate) fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

/// The heads a row keeps ([`heads_to_bytes`]); `None` for bytes no write
/// made, or more heads than a listing carries.
pub(crate) fn heads_from_bytes(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) || bytes.len() / 32 > sync_core::protocol::MAX_LISTED_HEADS {
        return None;
    }
    bytes
        .chunks_exact(32)
        .map(|h| ChangeHash::try_from(h).ok())
        .collect()
}

/// What a device's sync connection records of a write it makes, besides the
/// changes: who made it, for the audit row (whose action says whether the
/// write created the document, and whose detail names the chunk), and the
/// device's sync state after the write's changes were received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecords {
    /// The cadre.
    pub user_id: i64,
    /// The login's device id (empty for a device without one).
    pub device_id: String,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// Changes the write applied.
    pub changes_added: usize,
    /// Changes stored that wait for a dependency.
    pub changes_waiting: usize,
    /// The device's sync state after the write, kept for its next
    /// connection; `None` keeps none (a device without an id).
    pub sync_state: Option<SyncStateWrite>,
    /// Limits on what the document's owner may store, checked in the
    /// write's transaction against what their documents take then: a
    /// write that would break one fails with
    /// [`StoreError::OverLimit`](super::StoreError::OverLimit) and stores
    /// nothing. `None` checks none.
    pub owner_limits: Option<OwnerLimits>,
}

impl SyncRecords {
    /// The audit row of the write of chunk `chunk_id` to `document_id` at
    /// `at`; `created` when the write created the document.
    pub fn audit_entry(
        &self,
        document_id: DocumentId,
        at: DateTime<Utc>,
        created: bool,
        chunk_id: i64,
    ) -> NewAuditEntry {
        let waiting = match self.changes_waiting {
            0 => String::new(),
            w => format!(" + {w} waiting for dependencies"),
        };
        NewAuditEntry {
            at,
            user_id: Some(self.user_id),
            action: if created {
                "document.create"
            } else {
                "document.write"
            }
            .to_owned(),
            target: document_id.to_string(),
            detail: format!(
                "sync: {} change(s){waiting}, chunk {chunk_id}, device {:?}",
                self.changes_added, self.device_id
            ),
            remote_addr: self.remote_addr.clone(),
        }
    }
}

/// A write by another server process on the same database
/// ([`Store::other_writes`](super::Store::other_writes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherWrite {
    /// The document was written (its write has committed).
    Document(DocumentId),
    /// Notices may have been missed (the listening connection was lost and
    /// made again): any document may have been written.
    Missed,
}

/// Who an automerge actor of a document belongs to (`document_actors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorClaim {
    /// The actor id, lowercase hex (`ActorId::to_hex_string`).
    pub actor: String,
    /// The user the changes are attributed to.
    pub user_id: i64,
    /// The device that sent them ("" for the server and for sessions
    /// without a device id).
    pub device_id: String,
    /// The server wrote them on behalf of `user_id`.
    pub via_server: bool,
}

/// A row of `document_actors` with its user's name, as
/// [`Store::document_actors`](super::Store::document_actors) returns it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DocumentActor {
    /// The actor id, lowercase hex.
    pub actor: String,
    /// The user it belongs to.
    pub user_id: i64,
    /// That user's name.
    pub username: String,
    /// The device that first sent it ("" for the server).
    pub device_id: String,
    /// The server writes with it on behalf of the user.
    pub via_server: bool,
}

/// Where a petition lives, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PetitionLocation {
    /// The diary holding it.
    #[sqlx(try_from = "String")]
    pub document_id: DocumentId,
    /// The petition's record id.
    pub petition_id: String,
    /// The diary's owner.
    pub owner_user_id: i64,
    /// The owner's unit.
    pub unit_id: i64,
}

/// Result of [`Store::append_changes`](super::Store::append_changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The document's metadata after the write.
    pub meta: DocumentRow,
    /// Whether this write created the document.
    pub created: bool,
    /// Id of the stored chunk.
    pub chunk_id: i64,
}

impl AppendOutcome {
    /// Chunks not yet folded into the snapshot, this one included. The
    /// caller compacts when this grows past a threshold.
    pub fn pending_chunks(&self) -> u64 {
        u64::try_from(self.meta.pending_chunks).unwrap_or(0)
    }
}

/// Input of [`Store::compact`](super::Store::compact).
///
/// Compaction replaces the snapshot with one that includes the listed chunks
/// and deletes those chunks. Two guards make a concurrent compaction (another
/// task or another server process) fail with `Conflict` instead of losing
/// changes: the snapshot must still be the one the caller loaded
/// (`base_heads`), and every listed chunk must still exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// The document compacted.
    pub document_id: DocumentId,
    /// `snapshot_heads` of the document as the caller loaded it.
    pub base_heads: Option<String>,
    /// The new snapshot (automerge `save()` of the merged document).
    pub snapshot: Vec<u8>,
    /// Heads of the new snapshot, opaque to the store.
    pub heads: String,
    /// Chunks folded into the new snapshot.
    pub replaced_chunk_ids: Vec<i64>,
}

/// Input of [`Store::save_sync_state`](super::Store::save_sync_state): a
/// device's sync state of a document, as of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStateWrite {
    /// The document the state is about.
    pub document_id: DocumentId,
    /// The user whose device it is.
    pub user_id: i64,
    /// The device (the login's device id).
    pub device_id: String,
    /// The encoded sync state, opaque to the store.
    pub state: Vec<u8>,
    /// When it was saved (becomes `updated_at`).
    pub at: DateTime<Utc>,
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Database id (increases with time).
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it, if known (a failed login for an unknown user has none).
    pub user_id: Option<i64>,
    /// Dotted verb, e.g. `auth.login`, `auth.refresh_reuse`, `document.write`.
    pub action: String,
    /// What it was done to (a username, a document id), or "".
    pub target: String,
    /// Free text detail, or "". Never a secret.
    pub detail: String,
    /// The client's address, if known.
    pub remote_addr: Option<String>,
}

/// Input of [`Store::append_audit`](super::Store::append_audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// See [`AuditEntry::user_id`].
    pub user_id: Option<i64>,
    /// See [`AuditEntry::action`].
    pub action: String,
    /// See [`AuditEntry::target`].
    pub target: String,
    /// See [`AuditEntry::detail`].
    pub detail: String,
    /// See [`AuditEntry::remote_addr`].
    pub remote_addr: Option<String>,
}
