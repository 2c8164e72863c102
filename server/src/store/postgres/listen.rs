//! Writes by other server processes on the same database, heard through
//! `LISTEN/NOTIFY`: every document write sends a notice naming the writing
//! process and the document on [`WRITES_CHANNEL`] in its transaction, and
//! PostgreSQL delivers it to every listener once the write commits.

use sqlx::postgres::{PgListener, PgPool};
use sync_core::DocumentId;
use tokio::sync::mpsc;

use crate::store::{OtherWrite, StoreResult};

/// The channel document writes are announced on.
pub(super) const WRITES_CHANNEL: &str = "visit_diary_document_written";

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
            if let Some(document_id) = parse(notice.payload(), &own)
                && sender
                    .send(OtherWrite::Document(document_id))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    Ok(receiver)
}

/// The document a notice names, unless this process (`own`) wrote it or
/// the notice is not one of ours.
fn parse(payload: &str, own: &str) -> Option<DocumentId> {
    let (instance, document) = payload.split_once(' ')?;
    if instance == own {
        return None;
    }
    document.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_another_process_and_a_document() {
        let id = sync_core::diary_id("cadre01", 2026);
        assert_eq!(parse(&format!("b {id}"), "a"), Some(id));
        assert_eq!(parse(&format!("a {id}"), "a"), None);
        assert_eq!(parse("b not-an-id", "a"), None);
        assert_eq!(parse("garbage", "a"), None);
    }
}
