//! Writing petition events as the server, on a user's behalf.

use chrono::Utc;
use sync_core::automerge::ActorId;
use sync_core::records::petition::{Petition, PetitionEventKind, PetitionState};
use sync_core::{DiaryDocument, Edit, RecordId, Timestamp};

use super::{ActionError, Target};
use crate::app::AppState;
use crate::ledger::attribution::{believed_state, judged_events};
use crate::ledger::{Attribution, LedgerProjection, Writer};
use crate::store::{ActorClaim, DocumentWrite, NewAuditEntry, StoreError};
use crate::sync::documents;

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

/// Appends the events `decide` asks for to the petition `target`, as one
/// change by the server for `acting`.
///
/// `decide` sees the petition and the state its believed events add up to
/// (what the ledger shows, not what a device may have claimed) and returns
/// the events to write, or why not. Each is checked against the state as it
/// stands before it, like an edit on a phone.
pub async fn append_events<F>(
    state: &AppState,
    target: &Target,
    acting: &Acting,
    decide: F,
) -> Result<Written, ActionError>
where
    F: FnOnce(&Petition, &PetitionState) -> Result<Vec<PetitionEventKind>, ActionError>
        + Send
        + 'static,
{
    let document_id = target.document_id;
    tracing::Span::current().record("document_id", tracing::field::display(document_id));
    // The lock every sync merge of this document takes: nobody stores a
    // change to it between our load and our append.
    let guard = state.sync_hub.lock(document_id).await;
    let _permit = state
        .merge_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ActionError::ShuttingDown)?;
    let stored = state
        .store
        .load_document(&document_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    let stored_bytes = documents::stored_size(Some(&stored));
    let attribution = Attribution::from_rows(&state.store.document_actors(&document_id).await?);
    let writer = Writer {
        username: acting.username.clone(),
        user_id: acting.user_id,
        device_id: String::new(),
        via_server: true,
    };
    let petition_id = target.petition_id;
    let now = Timestamp(Utc::now().timestamp_millis());
    let built = tokio::task::spawn_blocking({
        let writer = writer.clone();
        move || write(&stored, petition_id, attribution, writer, now, decide)
    })
    .await??;
    let (chunk, ledger, actor, event_ids, kinds) = built;
    // The sync endpoint refuses a document past this size; a diary the
    // server filled up would stop syncing.
    let limit = state.config.max_document_bytes;
    if stored_bytes + chunk.len() > limit {
        return Err(ActionError::State(format!(
            "the diary has reached the size limit of {limit} bytes"
        )));
    }
    let write = DocumentWrite {
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
    };
    match state.store.append_changes(write).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(ActionError::NotFound),
        Err(e) => return Err(e.into()),
    }
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

/// What [`write`] produced: the chunk to store, the document's ledger rows,
/// the actor it wrote with, and the events' ids and kinds.
type Built = (
    Vec<u8>,
    LedgerProjection,
    ActorId,
    Vec<RecordId>,
    Vec<PetitionEventKind>,
);

/// Loads the stored diary, lets `decide` choose the events, writes them with
/// a fresh actor and projects the result. CPU-bound: runs off the async
/// threads.
fn write<F>(
    stored: &crate::store::StoredDocument,
    petition_id: RecordId,
    mut attribution: Attribution,
    writer: Writer,
    now: Timestamp,
    decide: F,
) -> Result<Built, ActionError>
where
    F: FnOnce(&Petition, &PetitionState) -> Result<Vec<PetitionEventKind>, ActionError>,
{
    let doc = documents::load(stored.meta.id, Some(stored))?;
    let mut diary = DiaryDocument::from_automerge(doc)?;
    let believed = |diary: &DiaryDocument, attribution: &Attribution| {
        let petition = diary
            .petition(petition_id)
            .filter(|p| p.deleted.is_none())
            .ok_or(ActionError::NotFound)?;
        let judged = judged_events(diary, &petition, attribution);
        let state = believed_state(&petition, &judged);
        Ok::<_, ActionError>((petition, state))
    };
    let (petition, mut current) = believed(&diary, &attribution)?;
    let kinds = decide(&petition, &current)?;
    let heads = diary.automerge().get_heads();
    // A fresh actor per action: two server processes acting on one diary at
    // once can never write the same actor's sequence numbers twice.
    let actor = ActorId::random();
    diary.automerge_mut().set_actor(actor.clone());
    attribution.insert(actor.clone(), writer.clone());
    let mut event_ids = Vec::with_capacity(kinds.len());
    for (n, kind) in (0_i64..).zip(&kinds) {
        // A millisecond apart, so that events are ordered (by time, then
        // id) as they were written.
        let edit = Edit::new(writer.username.clone(), Timestamp(now.millis() + n));
        let id = RecordId::from_random_bytes(rand::random());
        diary.record_petition_event_on(&edit, petition_id, id, kind, &current)?;
        event_ids.push(id);
        current = believed(&diary, &attribution)?.1;
    }
    let chunk = diary.automerge().save_after(&heads);
    let ledger = LedgerProjection::of_diary(&diary, &attribution);
    Ok((chunk, ledger, actor, event_ids, kinds))
}
