//! The [`Store`](crate::store::Store) impl both backends share.

/// Implements [`Store`](crate::store::Store) for a backend's store type
/// `$store` (a struct with a `pool: Pool<$db>` field), and its `pool()`,
/// once for both backends. Methods whose statements are the same on both call
/// [`Sql`](super::Sql) directly, in a transaction begun with the invoking
/// module's `BEGIN_WRITE` or `BEGIN_READ` statement where they need one;
/// `lock` is what a backend appends to a row's first read in a write
/// transaction to keep other writers off that row until the commit.
/// Compaction takes the module's `COMPACT` statements and its `id_list`
/// spelling of a list of ids. The rest call functions of the same name that
/// the invoking module defines, taking the pool first, because their
/// statements or writes differ: `migrate`, `list_users_in_units`,
/// `list_documents_in_units`, `append_changes`, `save_sync_state`,
/// `append_audit`, `other_writes` and `ledger::query`. The sync path's writes
/// (`append_changes`, `save_sync_state`, `append_audit`) take the store
/// itself: on SQLite they go through its group commit.
macro_rules! sql_store {
    ($store:ty, $db:ty, $backend:expr, lock = $lock:literal) => {
        impl $store {
            /// The underlying pool, for backend-specific code in this crate.
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }

            /// What a copy at `since` lacks, given the document's row
            /// `meta` just read: nothing, which the row alone tells (a copy
            /// is mostly up to date, and a transaction is two more round
            /// trips to the database), or what a read transaction finds.
            async fn since_row(
                &self,
                id: &sync_core::DocumentId,
                since: &$crate::store::StoredVersion,
                meta: $crate::store::DocumentRow,
            ) -> $crate::store::StoreResult<Option<$crate::store::DocumentSince>> {
                if $crate::store::sql::Sql::<$db>::nothing_since(&meta, since) {
                    return Ok(Some($crate::store::DocumentSince::Added {
                        meta,
                        chunks: Vec::new(),
                    }));
                }
                let mut tx = self.pool.begin_with(BEGIN_READ).await?;
                let found =
                    $crate::store::sql::Sql::<$db>::load_document_since(&mut tx, id, since).await?;
                tx.commit().await?;
                Ok(found)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                migrate(&self.pool).await
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn create_unit(
                &self,
                unit: $crate::store::NewUnit,
            ) -> $crate::store::StoreResult<$crate::store::Unit> {
                $crate::store::sql::Sql::<$db>::create_unit(&self.pool, unit).await
            }

            async fn get_unit(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::Unit>> {
                $crate::store::sql::Sql::<$db>::get_unit(&self.pool, id).await
            }

            async fn get_unit_by_code(
                &self,
                code: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::Unit>> {
                $crate::store::sql::Sql::<$db>::get_unit_by_code(&self.pool, code).await
            }

            async fn list_units(&self) -> $crate::store::StoreResult<Vec<$crate::store::Unit>> {
                $crate::store::sql::Sql::<$db>::list_units(&self.pool).await
            }

            async fn unit_subtree(
                &self,
                root: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Unit>> {
                $crate::store::sql::Sql::<$db>::unit_subtree(&self.pool, root).await
            }

            async fn is_unit_within(
                &self,
                unit: i64,
                root: i64,
            ) -> $crate::store::StoreResult<bool> {
                $crate::store::sql::Sql::<$db>::is_unit_within(&self.pool, unit, root).await
            }

            async fn create_user(
                &self,
                user: $crate::store::NewUser,
            ) -> $crate::store::StoreResult<$crate::store::User> {
                $crate::store::sql::Sql::<$db>::create_user(&self.pool, user).await
            }

            async fn get_user(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::User>> {
                $crate::store::sql::Sql::<$db>::get_user(&self.pool, id).await
            }

            async fn get_user_by_username(
                &self,
                username: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::User>> {
                $crate::store::sql::Sql::<$db>::get_user_by_username(&self.pool, username).await
            }

            async fn list_users_in_units(
                &self,
                unit_ids: &[i64],
            ) -> $crate::store::StoreResult<Vec<$crate::store::User>> {
                list_users_in_units(&self.pool, unit_ids).await
            }

            async fn set_user_disabled(
                &self,
                user_id: i64,
                disabled: bool,
            ) -> $crate::store::StoreResult<()> {
                $crate::store::sql::Sql::<$db>::set_user_disabled(&self.pool, user_id, disabled)
                    .await
            }

            async fn set_user_password(
                &self,
                user_id: i64,
                password_hash: &str,
            ) -> $crate::store::StoreResult<()> {
                $crate::store::sql::Sql::<$db>::set_user_password(
                    &self.pool,
                    user_id,
                    password_hash,
                )
                .await
            }

            async fn insert_refresh_token(
                &self,
                token: $crate::store::NewRefreshToken,
            ) -> $crate::store::StoreResult<$crate::store::RefreshToken> {
                $crate::store::sql::Sql::<$db>::insert_refresh_token(&self.pool, token).await
            }

            async fn get_refresh_token(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::RefreshToken>> {
                $crate::store::sql::Sql::<$db>::get_refresh_token(&self.pool, token_hash).await
            }

            async fn rotate_refresh_token(
                &self,
                presented_hash: &str,
                replacement: $crate::store::RefreshReplacement,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::RefreshRotation> {
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
                let rotation = $crate::store::sql::Sql::<$db>::rotate_refresh_token(
                    &mut tx,
                    concat!($crate::store::sql::refresh_by_hash!(), $lock),
                    presented_hash,
                    replacement,
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok(rotation)
            }

            async fn revoke_refresh_family(
                &self,
                family_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                $crate::store::sql::Sql::<$db>::revoke_family(&self.pool, family_id, now).await
            }

            async fn revoke_other_logins(
                &self,
                user_id: i64,
                keep: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<String>> {
                $crate::store::sql::Sql::<$db>::revoke_other_logins(&self.pool, user_id, keep, now)
                    .await
            }

            async fn get_document_meta(
                &self,
                id: &sync_core::DocumentId,
            ) -> $crate::store::StoreResult<Option<$crate::store::DocumentRow>> {
                $crate::store::sql::Sql::<$db>::get_document_meta(&self.pool, id).await
            }

            async fn load_document(
                &self,
                id: &sync_core::DocumentId,
            ) -> $crate::store::StoreResult<Option<$crate::store::StoredDocument>> {
                let mut tx = self.pool.begin_with(BEGIN_READ).await?;
                let stored = $crate::store::sql::Sql::<$db>::load_document(&mut tx, id).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn load_document_since(
                &self,
                id: &sync_core::DocumentId,
                since: &$crate::store::StoredVersion,
            ) -> $crate::store::StoreResult<Option<$crate::store::DocumentSince>> {
                match $crate::store::sql::Sql::<$db>::get_document_meta(&self.pool, id).await? {
                    Some(meta) => self.since_row(id, since, meta).await,
                    None => Ok(None),
                }
            }

            async fn load_document_since_with_sync_state(
                &self,
                id: &sync_core::DocumentId,
                since: &$crate::store::StoredVersion,
                user_id: i64,
                device_id: &str,
            ) -> $crate::store::StoreResult<(Option<$crate::store::DocumentSince>, Option<Vec<u8>>)>
            {
                let Some(found) = $crate::store::sql::Sql::<$db>::document_meta_and_sync_state(
                    &self.pool, id, user_id, device_id,
                )
                .await?
                else {
                    return Ok((None, None));
                };
                let since = self.since_row(id, since, found.meta).await?;
                Ok((since, found.sync_state))
            }

            async fn list_documents_for_owner(
                &self,
                user_id: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::DocumentRow>> {
                $crate::store::sql::Sql::<$db>::list_documents_for_owner(&self.pool, user_id).await
            }

            async fn list_document_heads(
                &self,
                user_id: i64,
            ) -> $crate::store::StoreResult<Vec<sync_core::protocol::ListedDocument>> {
                $crate::store::sql::Sql::<$db>::list_document_heads(&self.pool, user_id).await
            }

            async fn fill_document_heads(
                &self,
                document_id: &sync_core::DocumentId,
                heads: &[sync_core::automerge::ChangeHash],
                version: &$crate::store::StoredVersion,
            ) -> $crate::store::StoreResult<bool> {
                $crate::store::sql::Sql::<$db>::fill_document_heads(
                    &self.pool,
                    document_id,
                    heads,
                    version,
                )
                .await
            }

            async fn owner_usage(
                &self,
                user_id: i64,
            ) -> $crate::store::StoreResult<$crate::store::OwnerUsage> {
                $crate::store::sql::Sql::<$db>::owner_usage(&self.pool, user_id).await
            }

            async fn list_documents_in_units(
                &self,
                unit_ids: &[i64],
            ) -> $crate::store::StoreResult<Vec<$crate::store::DocumentRow>> {
                list_documents_in_units(&self.pool, unit_ids).await
            }

            async fn append_changes(
                &self,
                write: $crate::store::DocumentWrite,
            ) -> $crate::store::StoreResult<$crate::store::AppendOutcome> {
                append_changes(self, write).await
            }

            async fn other_writes(
                &self,
            ) -> $crate::store::StoreResult<
                Option<tokio::sync::mpsc::Receiver<$crate::store::OtherWrite>>,
            > {
                other_writes(self).await
            }

            async fn compact(
                &self,
                compaction: $crate::store::Compaction,
            ) -> $crate::store::StoreResult<()> {
                let replaced = $crate::store::dedup_ids(&compaction.replaced_chunk_ids);
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
                $crate::store::sql::Sql::<$db>::compact(
                    &mut tx,
                    COMPACT,
                    &compaction,
                    id_list(&replaced),
                    replaced.len(),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn replace_ledger(
                &self,
                document_id: &sync_core::DocumentId,
                ledger: &$crate::ledger::LedgerProjection,
                expected_updated_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
                $crate::store::sql::Sql::<$db>::replace_ledger_if_unchanged(
                    &mut tx,
                    concat!($crate::store::sql::updated_at_by_id!(), $lock),
                    document_id,
                    ledger,
                    expected_updated_at,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn query_ledger(
                &self,
                query: &$crate::ledger::LedgerQuery,
            ) -> $crate::store::StoreResult<$crate::ledger::LedgerPage> {
                ledger::query(&self.pool, query).await
            }

            async fn fold_ledger_counts(&self) -> $crate::store::StoreResult<u64> {
                ledger::fold_counts(&self.pool).await
            }

            async fn document_actors(
                &self,
                document_id: &sync_core::DocumentId,
            ) -> $crate::store::StoreResult<Vec<$crate::store::DocumentActor>> {
                $crate::store::sql::Sql::<$db>::document_actors(&self.pool, document_id).await
            }

            async fn find_petitions(
                &self,
                petition_id: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::PetitionLocation>> {
                $crate::store::sql::Sql::<$db>::find_petitions(&self.pool, petition_id).await
            }

            async fn ledger_petition(
                &self,
                document_id: &sync_core::DocumentId,
                petition_id: &str,
                today: &str,
            ) -> $crate::store::StoreResult<Option<$crate::ledger::LedgerItem>> {
                $crate::store::sql::Sql::<$db>::ledger_petition(
                    &self.pool,
                    document_id,
                    petition_id,
                    today,
                )
                .await
            }

            async fn ledger_rows(
                &self,
                document_id: &sync_core::DocumentId,
            ) -> $crate::store::StoreResult<$crate::ledger::LedgerProjection> {
                $crate::store::sql::Sql::<$db>::ledger_rows(&self.pool, document_id).await
            }

            async fn ledger_petition_events(
                &self,
                document_id: &sync_core::DocumentId,
                petition_id: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::ledger::LedgerEvent>> {
                $crate::store::sql::Sql::<$db>::ledger_petition_events(
                    &self.pool,
                    document_id,
                    petition_id,
                )
                .await
            }

            async fn visit_counts(
                &self,
                query: &$crate::ledger::report::ReportQuery,
                grouping: $crate::ledger::report::VisitGrouping,
            ) -> $crate::store::StoreResult<Vec<$crate::ledger::report::VisitCounts>> {
                $crate::store::sql::Sql::<$db>::visit_counts(&self.pool, query, grouping).await
            }

            async fn petition_counts(
                &self,
                query: &$crate::ledger::report::ReportQuery,
            ) -> $crate::store::StoreResult<Vec<$crate::ledger::report::PetitionCounts>> {
                $crate::store::sql::Sql::<$db>::petition_counts(&self.pool, query).await
            }

            async fn query_visits(
                &self,
                query: &$crate::ledger::report::RecordQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::ledger::report::VisitItem>, i64)> {
                $crate::store::sql::Sql::<$db>::query_visits(&self.pool, query).await
            }

            async fn query_cards(
                &self,
                query: &$crate::ledger::report::RecordQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::ledger::report::CardItem>, i64)> {
                $crate::store::sql::Sql::<$db>::query_cards(&self.pool, query).await
            }

            async fn list_devices(
                &self,
                root_unit_id: i64,
                user_id: Option<i64>,
            ) -> $crate::store::StoreResult<Vec<$crate::ledger::report::DeviceRow>> {
                $crate::store::sql::Sql::<$db>::list_devices(&self.pool, root_unit_id, user_id)
                    .await
            }

            async fn user_posts(&self) -> $crate::store::StoreResult<Vec<(i64, String)>> {
                $crate::store::sql::Sql::<$db>::user_posts(&self.pool).await
            }

            async fn set_user_post(
                &self,
                user_id: i64,
                post: &str,
            ) -> $crate::store::StoreResult<()> {
                $crate::store::sql::Sql::<$db>::set_user_post(&self.pool, user_id, post).await
            }

            async fn load_sync_state(
                &self,
                document_id: &sync_core::DocumentId,
                user_id: i64,
                device_id: &str,
            ) -> $crate::store::StoreResult<Option<Vec<u8>>> {
                $crate::store::sql::Sql::<$db>::load_sync_state(
                    &self.pool,
                    document_id,
                    user_id,
                    device_id,
                )
                .await
            }

            async fn save_sync_state(
                &self,
                write: $crate::store::SyncStateWrite,
            ) -> $crate::store::StoreResult<()> {
                save_sync_state(self, write).await
            }

            async fn append_audit(
                &self,
                entry: $crate::store::NewAuditEntry,
            ) -> $crate::store::StoreResult<i64> {
                append_audit(self, entry).await
            }

            async fn list_audit(
                &self,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::AuditEntry>> {
                $crate::store::sql::Sql::<$db>::list_audit(&self.pool, limit).await
            }

            async fn query_audit(
                &self,
                action: Option<&str>,
                before_id: Option<i64>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::AuditEntry>> {
                $crate::store::sql::Sql::<$db>::query_audit(&self.pool, action, before_id, limit)
                    .await
            }
        }
    };
}
pub(crate) use sql_store;
