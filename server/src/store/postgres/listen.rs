//! Writes by other server processes on the same database, heard through
//! `LISTEN/NOTIFY`: each process announces the documents it wrote on
//! [`WRITES_CHANNEL`] ([`Announcer`]), and every process listens there
//! ([`other_writes`]) and skips its own notices.

use std::collections::BTreeSet;

use sqlx::postgres::{PgListener, PgPool};
use sync_core::DocumentId;
use tokio::sync::mpsc;

use crate::store::{OtherWrite, StoreResult};

/// The channel document writes are announced on.
const WRITES_CHANNEL: &str = "visit_diary_document_written";

/// Most bytes of one notice's payload (PostgreSQL refuses 8,000 or more).
const MAX_PAYLOAD: usize = 7_900;

/// Announces committed writes. Documents handed to
/// [`written`](Self::written) are sent by a task of their own, in batches:
/// one `NOTIFY` transaction for all that arrived while the previous one was
/// sent, each notice the writing process's id and up to a few hundred
/// document ids.
///
/// Not in the write's own transaction: a transaction that notifies holds a
/// database-wide lock from its commit until the commit is flushed, so every
/// write would be flushed alone, where PostgreSQL flushes concurrent commits
/// together. The notice therefore follows the commit (by a millisecond or
/// two); if the process dies in between, the other processes' devices get
/// the write at their next sync instead.
#[derive(Debug, Clone)]
pub(super) struct Announcer {
    sender: mpsc::UnboundedSender<DocumentId>,
}

impl Announcer {
    /// Starts the announcing task, for the process named `instance`.
    pub(super) fn start(pool: PgPool, instance: String) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = BTreeSet::new();
            while let Some(first) = receiver.recv().await {
                batch.insert(first);
                while let Ok(more) = receiver.try_recv() {
                    batch.insert(more);
                }
                let notices = payloads(&instance, &batch);
                batch.clear();
                if let Err(e) = announce(&pool, &notices).await {
                    tracing::warn!(error = %e, "could not announce writes to other processes");
                }
            }
        });
        Announcer { sender }
    }

    /// Announces that `document_id` was written (call after the commit).
    pub(super) fn written(&self, document_id: DocumentId) {
        // The task ends only with the runtime.
        let _ = self.sender.send(document_id);
    }
}

/// The notices announcing `documents`: `instance` and then as many ids as
/// fit, separated by spaces.
fn payloads(instance: &str, documents: &BTreeSet<DocumentId>) -> Vec<String> {
    let mut notices = Vec::new();
    let mut notice = instance.to_owned();
    for id in documents {
        let id = id.to_string();
        if notice.len() + 1 + id.len() > MAX_PAYLOAD {
            notices.push(std::mem::replace(&mut notice, instance.to_owned()));
        }
        notice.push(' ');
        notice.push_str(&id);
    }
    if notice.len() > instance.len() {
        notices.push(notice);
    }
    notices
}

/// Sends the notices in one transaction.
async fn announce(pool: &PgPool, notices: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for notice in notices {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WRITES_CHANNEL)
            .bind(notice)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Notices not yet taken by the server before the listener waits: a burst
/// of writes elsewhere larger than this holds up only the listener.
const BACKLOG: usize = 4096;

/// Starts listening on its own connection; the receiver gets the documents
/// other processes (whose `instance` differs from `own`) write, and
/// [`OtherWrite::Missed`] after the connection was lost and made again.
/// Listening ends when the receiver is dropped.
pub(super) async fn other_writes(
    pool: &PgPool,
    own: String,
) -> StoreResult<mpsc::Receiver<OtherWrite>> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WRITES_CHANNEL).await?;
    let (sender, receiver) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        // Whether notices may have been missed since the last one heard.
        let mut lost = false;
        loop {
            let heard = tokio::select! {
                () = sender.closed() => return,
                heard = listener.try_recv() => heard,
            };
            let notice = match heard {
                Ok(Some(notice)) => notice,
                // The connection was lost and made again (listening anew):
                // notices sent meanwhile are gone.
                Ok(None) => {
                    tracing::warn!("lost the connection listening for other processes' writes");
                    if sender.send(OtherWrite::Missed).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Not connected again yet; the next call tries again.
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other processes' writes failed; retrying");
                    lost = true;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if std::mem::take(&mut lost) && sender.send(OtherWrite::Missed).await.is_err() {
                return;
            }
            for document_id in parse(notice.payload(), &own) {
                if sender
                    .send(OtherWrite::Document(document_id))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

/// The documents a notice names, unless this process (`own`) wrote them;
/// what does not read as a document id is skipped.
fn parse(payload: &str, own: &str) -> Vec<DocumentId> {
    let mut words = payload.split(' ');
    match words.next() {
        Some(instance) if instance != own => words.filter_map(|w| w.parse().ok()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_another_process_and_its_documents() {
        let (one, two) = (
            sync_core::diary_id("cadre01", 2026),
            sync_core::contacts_id("cadre01"),
        );
        assert_eq!(parse(&format!("b {one} {two}"), "a"), vec![one, two]);
        assert_eq!(parse(&format!("a {one}"), "a"), Vec::<DocumentId>::new());
        assert_eq!(parse(&format!("b not-an-id {two}"), "a"), vec![two]);
        assert_eq!(parse("garbage", "a"), Vec::<DocumentId>::new());
    }

    #[test]
    fn many_documents_are_split_over_notices_that_fit() {
        let documents: BTreeSet<DocumentId> = (0..1000)
            .map(|n| sync_core::contacts_id(&format!("cadre{n}")))
            .collect();
        let notices = payloads("p1", &documents);
        assert!(notices.len() > 1);
        assert!(notices.iter().all(|n| n.len() <= MAX_PAYLOAD));
        let heard: BTreeSet<DocumentId> = notices.iter().flat_map(|n| parse(n, "p2")).collect();
        assert_eq!(heard, documents);
        assert!(payloads("p1", &BTreeSet::new()).is_empty());
    }
}
