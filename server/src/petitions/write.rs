//! Writing petition events as the server, on a user's behalf.

use chrono::Utc;
use sync_core::automerge::{ActorId, ChangeHash};
use sync_core::records::petition::{Petition, PetitionEventKind, PetitionState};
use sync_core::{DiaryDocument, Edit, RecordId, Timestamp};

use super::{ActionError, Target};
use crate::app::AppState;
use crate::ledger::attribution::{believed_state, judged_events};
use crate::ledger::{Attribution, LedgerProjection, Writer};
use crate::store::{ActorClaim, DocumentWrite, NewAuditEntry, StoreError};
use crate::sync::{LiveDocument, LiveError, store_write};

/// Who acts, and from where (for the audit log).
#[derive(Debug, Clone)]
pub struct Acting {
    /// The user the events are attributed to.
    pub user_id: i64,
    /// Their username (the events' `by`).
    pub username: String,
    /// The device of their token, for the audit log.
    pub device_id: String,
    /// Their address, for the audit log.
    pub remote_addr: Option<String>,
}

/// What an action wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The new events' ids, in the order written.
    pub event_ids: Vec<RecordId>,
}

/// What an action writes: from the petition and its state now, the events
/// to append, or why the action does not apply.
pub trait Decide:
    FnOnce(&Petition, &PetitionState) -> Result<Vec<PetitionEventKind>, ActionError> + Send + 'static
{
}

impl<F> Decide for F where
    F: FnOnce(&Petition, &PetitionState) -> Result<Vec<PetitionEventKind>, ActionError>
        + Send
        + 'static
{
}

/// Appends the events `decide` asks for to the petition `target`, as one
/// change by the server for `acting`.
///
/// `decide` sees the petition and the state its believed events add up to
/// (what the ledger shows, not what a device may have claimed) and returns
/// the events to write, or why not. Each is checked against the state as it
/// stands before it, like an edit on a phone.
pub async fn append_events(
    state: &AppState,
    target: &Target,
    acting: &Acting,
    decide: impl Decide,
) -> Result<Written, ActionError> {
    let document_id = target.document_id;
    tracing::Span::current().record("document_id", tracing::field::display(document_id));
    // The lock every sync merge of this document takes: nobody stores a
    // change to it between our load and our append.
    let (mut guard, _permit) = state
        .lock_for_merge(document_id)
        .await
        .map_err(|_| ActionError::ShuttingDown)?;
    // The diary's copy in memory; it goes back only once our change is
    // stored (see `sync::live`).
    let live = guard
        .current(state.store.as_ref(), document_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    let stored_bytes = live.stored_bytes;
    let writer = Writer {
        username: acting.username.clone(),
        user_id: acting.user_id,
        device_id: String::new(),
        via_server: true,
    };
    let petition_id = target.petition_id;
    let now = Timestamp(Utc::now().timestamp_millis());
    let (live, built) = tokio::task::spawn_blocking({
        let writer = writer.clone();
        move || write(live, petition_id, writer, now, decide)
    })
    .await?;
    let built = match (built, live) {
        (Ok(built), _) => built,
        // Refused before anything was written: the copy is as stored.
        (Err(e), Some(live)) => {
            guard.keep(live);
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    let (live, chunk, ledger, actor, event_ids, kinds, heads) = built;
    // The sync endpoint refuses a document past this size; a diary the
    // server filled up would stop syncing.
    let limit = state.config.max_document_bytes;
    if stored_bytes + chunk.len() > limit {
        return Err(ActionError::State(format!(
            "the diary has reached the size limit of {limit} bytes"
        )));
    }
    let write = DocumentWrite {
        // Taken from the live copy by `store_write`.
        heads: None,
        document_id,
        create: None,
        data: chunk,
        at: Utc::now(),
        ledger: Some(ledger),
        actors: vec![ActorClaim {
            actor: actor.to_hex_string(),
            user_id: writer.user_id,
            device_id: String::new(),
            via_server: true,
        }],
        based_on: None,
        sync: None,
    };
    // Another process may have written the diary since it was read: the
    // events are kept all the same (concurrent events all survive, as from
    // two phones), with the rows projected again from both writes.
    let live = match store_write(state.store.as_ref(), live, write, heads).await {
        Ok((live, appended)) => {
            if crate::sync::compactor::worth_compacting(appended.pending_chunks(), &live) {
                state.sync_hub.compactions().request(document_id);
            }
            live
        }
        Err(LiveError::Store(StoreError::NotFound)) => return Err(ActionError::NotFound),
        Err(e) => return Err(e.into()),
    };
    guard.keep(live);
    drop(guard);
    // Connections syncing this document offer the change to their phones;
    // no connection has this origin, so all of them do.
    state
        .sync_hub
        .notify(document_id, crate::sync::SERVER_ORIGIN);
    let detail = serde_json::json!({
        "events": kinds,
        "event_ids": event_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "device": acting.device_id,
    });
    for kind in &kinds {
        let entry = NewAuditEntry {
            at: Utc::now(),
            user_id: Some(acting.user_id),
            action: format!("petition.{}", kind.type_name()),
            target: format!("{document_id}/{petition_id}"),
            detail: detail.to_string(),
            remote_addr: acting.remote_addr.clone(),
        };
        if let Err(e) = state.store.append_audit(entry).await {
            tracing::error!(document_id = %document_id, error = %crate::error::error_chain(&e), "audit row not written");
        }
    }
    Ok(Written { event_ids })
}

/// What [`write`] produced: the copy with the change made, the chunk to
/// store, the document's ledger rows, the actor it wrote with, the events'
/// ids and kinds, and the document's heads before the change.
type Built = (
    LiveDocument,
    Vec<u8>,
    LedgerProjection,
    ActorId,
    Vec<RecordId>,
    Vec<PetitionEventKind>,
    Vec<ChangeHash>,
);

/// Lets `decide` choose the events on the diary's live copy, writes them
/// with a fresh actor and projects the result. CPU-bound: runs off the
/// async threads. On an error the copy comes back only if nothing was
/// written to it.
fn write<F>(
    live: LiveDocument,
    petition_id: RecordId,
    writer: Writer,
    now: Timestamp,
    decide: F,
) -> (Option<LiveDocument>, Result<Built, ActionError>)
where
    F: FnOnce(&Petition, &PetitionState) -> Result<Vec<PetitionEventKind>, ActionError>,
{
    let LiveDocument {
        doc,
        mut known,
        owner_user_id,
        version,
        pending_chunks,
        stored_bytes,
        base_bytes,
    } = live;
    let rebuild = |doc| LiveDocument {
        doc,
        known: Attribution::default(),
        owner_user_id,
        version: version.clone(),
        pending_chunks: pending_chunks.clone(),
        stored_bytes,
        base_bytes,
    };
    let mut diary = match DiaryDocument::from_automerge(doc) {
        Ok(diary) => diary,
        Err(e) => return (None, Err(e.into())),
    };
    let believed = |diary: &DiaryDocument, attribution: &Attribution| {
        let petition = diary
            .petition(petition_id)
            .filter(|p| p.deleted.is_none())
            .ok_or(ActionError::NotFound)?;
        let judged = judged_events(diary.view(), &petition, attribution);
        let state = believed_state(&petition, &judged);
        Ok::<_, ActionError>((petition, state))
    };
    let decided = believed(&diary, &known)
        .and_then(|(petition, current)| Ok((decide(&petition, &current)?, current)));
    let (kinds, mut current) = match decided {
        Ok(decided) => decided,
        Err(e) => {
            let mut live = rebuild(diary.into_automerge());
            live.known = known;
            return (Some(live), Err(e));
        }
    };
    let heads = diary.automerge().get_heads();
    // A fresh actor per action: two server processes acting on one diary at
    // once can never write the same actor's sequence numbers twice.
    let actor = ActorId::random();
    diary.automerge_mut().set_actor(actor.clone());
    known.insert(actor.clone(), writer.clone());
    let mut event_ids = Vec::with_capacity(kinds.len());
    for (n, kind) in (0_i64..).zip(&kinds) {
        // A millisecond apart, so that events are ordered (by time, then
        // id) as they were written.
        let edit = Edit::new(writer.username.clone(), Timestamp(now.millis() + n));
        let id = RecordId::from_random_bytes(rand::random());
        let written = diary
            .record_petition_event_on(&edit, petition_id, id, kind, &current)
            .map_err(ActionError::from)
            .and_then(|_| Ok(believed(&diary, &known)?.1));
        match written {
            Ok(next) => current = next,
            // Part of the action may be in the copy: drop it.
            Err(e) => return (None, Err(e)),
        }
        event_ids.push(id);
    }
    let chunk = diary.automerge().save_after(&heads);
    let ledger = LedgerProjection::after_changes(diary.automerge(), &known, &heads, None);
    let mut live = rebuild(diary.into_automerge());
    live.known = known;
    (
        None,
        Ok((live, chunk, ledger, actor, event_ids, kinds, heads)),
    )
}
