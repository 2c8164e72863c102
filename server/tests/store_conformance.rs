//! The storage conformance suite: every case is written once against
//! `dyn Store` and run on every backend by test-support's `backends!` macro:
//! always on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set (each
//! test in a fresh schema).

use test_support::store as common;

use std::sync::Arc;

use common::{named_id, t};
use server::store::{
    ActorClaim, AppendOutcome, Compaction, DocumentSince, DocumentWrite, NewAuditEntry,
    NewDocument, NewRefreshToken, OverLimit, OwnerLimits, OwnerUsage, RefreshReplacement,
    RefreshRotation, Role, StaleWrite, Store, StoreError, StoredDocument, StoredKind,
    StoredVersion, SyncRecords, SyncStateWrite,
};

use cases::*;

test_support::backends!(
    units_and_subtrees,
    unit_constraints,
    users,
    refresh_rotation,
    refresh_reuse_revokes_family,
    refresh_expired_revoked_and_unknown,
    refresh_concurrent_presentations,
    refresh_retry_within_grace_gets_the_same_successor,
    refresh_retry_after_grace_revokes,
    documents_append_and_load,
    document_ownership,
    documents_by_owner_and_unit,
    owner_usage,
    compaction,
    compaction_conflicts,
    chunk_counts_and_stale_writes,
    concurrent_appends,
    concurrent_writes_fail_alone,
    audit_log,
    sync_states,
    a_sync_write_records_its_audit_row_and_sync_state,
    a_sync_write_over_its_owners_limits_stores_nothing,
    document_heads_are_listed_for_their_owner,
);

mod cases {
    use super::*;

    /// The stored ids of the named documents, in the store's order (by id).
    fn stored_ids(names: &[&str]) -> Vec<String> {
        let mut ids: Vec<String> = names.iter().map(|n| named_id(n).to_string()).collect();
        ids.sort();
        ids
    }

    pub(crate) fn write(id: &str, owner: Option<i64>, data: &[u8], at: i64) -> DocumentWrite {
        DocumentWrite {
            heads: None,
            document_id: named_id(id),
            create: owner.map(|owner_user_id| NewDocument {
                kind: StoredKind::Diary,
                owner_user_id,
                year: Some(2025),
            }),
            data: data.to_vec(),
            at: t(at),
            ledger: None,
            actors: Vec::new(),
            based_on: None,
            sync: None,
        }
    }

    /// Appends [`write`]`(id, owner, data, at)`, which must succeed.
    async fn append(
        s: &dyn Store,
        id: &str,
        owner: Option<i64>,
        data: &[u8],
        at: i64,
    ) -> AppendOutcome {
        s.append_changes(write(id, owner, data, at))
            .await
            .expect("append")
    }

    /// The stored document `id`, which must exist.
    async fn load(s: &dyn Store, id: &str) -> StoredDocument {
        s.load_document(&named_id(id))
            .await
            .expect("load")
            .expect("doc")
    }

    /// The ids of `root` and every unit below it.
    async fn subtree_ids(s: &dyn Store, root: i64) -> Vec<i64> {
        s.unit_subtree(root)
            .await
            .expect("subtree")
            .iter()
            .map(|u| u.id)
            .collect()
    }

    fn codes(units: &[server::store::Unit]) -> Vec<&str> {
        units.iter().map(|u| u.code.as_str()).collect()
    }

    pub async fn units_and_subtrees(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let county = common::unit(s, "county", None, "county").await;
        let town1 = common::unit(s, "town1", Some(&county), "town").await;
        let town2 = common::unit(s, "town2", Some(&county), "town").await;
        let v1 = common::unit(s, "village1", Some(&town1), "village").await;
        let v2 = common::unit(s, "village2", Some(&town1), "village").await;
        let v3 = common::unit(s, "village3", Some(&town2), "village").await;

        assert_eq!(v1.parent_id, Some(town1.id));
        assert_eq!(county.parent_id, None);
        assert_eq!(s.get_unit(v2.id).await.expect("get"), Some(v2.clone()));
        assert_eq!(
            s.get_unit_by_code("village3").await.expect("get"),
            Some(v3.clone())
        );
        assert_eq!(s.get_unit_by_code("nope").await.expect("get"), None);
        assert_eq!(s.get_unit(-1).await.expect("get"), None);
        assert_eq!(s.list_units().await.expect("list").len(), 6);

        assert_eq!(
            codes(&s.unit_subtree(town1.id).await.expect("subtree")),
            ["town1", "village1", "village2"]
        );
        assert_eq!(s.unit_subtree(county.id).await.expect("subtree").len(), 6);
        assert_eq!(
            codes(&s.unit_subtree(v3.id).await.expect("subtree")),
            ["village3"]
        );
        assert!(s.unit_subtree(-1).await.expect("subtree").is_empty());

        for (unit, root, expected) in [
            (v1.id, town1.id, true),
            (v1.id, county.id, true),
            (town1.id, town1.id, true),
            (v3.id, town1.id, false),
            (town1.id, v1.id, false),
            (town2.id, town1.id, false),
            (-1, county.id, false),
        ] {
            assert_eq!(
                s.is_unit_within(unit, root).await.expect("within"),
                expected,
                "is {unit} within {root}?"
            );
        }
    }

    pub async fn unit_constraints(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let county = common::unit(s, "county", None, "county").await;
        let dup = s
            .create_unit(server::store::NewUnit {
                code: "county".to_owned(),
                name: "另一个县".to_owned(),
                parent_id: None,
                kind: "county".to_owned(),
            })
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let orphan = s
            .create_unit(server::store::NewUnit {
                code: "orphan".to_owned(),
                name: "孤村".to_owned(),
                parent_id: Some(county.id + 1000),
                kind: "village".to_owned(),
            })
            .await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
    }

    pub async fn users(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let town = common::unit(s, "town1", None, "town").await;
        let village = common::unit(s, "village1", Some(&town), "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &village).await;
        let bob = common::user(s, "bob", Role::Supervisor, &town).await;
        let root = common::user(s, "root", Role::Admin, &town).await;

        assert_eq!(alice.role, Role::Cadre);
        assert_eq!(bob.role, Role::Supervisor);
        assert_eq!(root.role, Role::Admin);
        assert!(!alice.disabled);
        assert_eq!(
            s.get_user(alice.id).await.expect("get"),
            Some(alice.clone())
        );
        assert_eq!(
            s.get_user_by_username("bob").await.expect("get"),
            Some(bob.clone())
        );
        assert_eq!(s.get_user_by_username("carol").await.expect("get"), None);
        assert!(
            !format!("{alice:?}").contains("placeholder"),
            "hash in Debug"
        );

        let dup = s
            .create_user(server::store::NewUser {
                username: "alice".to_owned(),
                display_name: "另一个".to_owned(),
                role: Role::Cadre,
                unit_id: village.id,
                password_hash: "x".to_owned(),
            })
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let no_unit = s
            .create_user(server::store::NewUser {
                username: "dave".to_owned(),
                display_name: "无单位".to_owned(),
                role: Role::Cadre,
                unit_id: village.id + 1000,
                password_hash: "x".to_owned(),
            })
            .await;
        assert!(
            matches!(no_unit, Err(StoreError::Conflict(_))),
            "{no_unit:?}"
        );

        let in_village: Vec<String> = s
            .list_users_in_units(&[village.id])
            .await
            .expect("list")
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(in_village, ["alice"]);
        assert_eq!(
            s.list_users_in_units(&[village.id, town.id])
                .await
                .expect("list")
                .len(),
            3
        );
        assert!(s.list_users_in_units(&[]).await.expect("list").is_empty());

        s.set_user_disabled(alice.id, true).await.expect("disable");
        assert!(
            s.get_user(alice.id)
                .await
                .expect("get")
                .expect("alice")
                .disabled
        );
        s.set_user_disabled(alice.id, false).await.expect("enable");
        assert!(
            !s.get_user(alice.id)
                .await
                .expect("get")
                .expect("alice")
                .disabled
        );
        assert!(matches!(
            s.set_user_disabled(alice.id + 1000, true).await,
            Err(StoreError::NotFound)
        ));
    }

    async fn token_fixture(s: &dyn Store) -> (i64, String) {
        let unit = common::unit(s, "village1", None, "village").await;
        let user = common::user(s, "alice", Role::Cadre, &unit).await;
        let family = "family-1".to_owned();
        s.insert_refresh_token(NewRefreshToken {
            user_id: user.id,
            family_id: family.clone(),
            token_hash: "h1".to_owned(),
            device_id: "phone".to_owned(),
            created_at: t(0),
            expires_at: t(1000),
        })
        .await
        .expect("insert");
        (user.id, family)
    }

    fn replacement(hash: &str, expires: i64) -> RefreshReplacement {
        RefreshReplacement {
            token_hash: hash.to_owned(),
            expires_at: t(expires),
            retry_grace: chrono::Duration::zero(),
        }
    }

    fn replacement_with_grace(hash: &str, expires: i64, grace_secs: i64) -> RefreshReplacement {
        RefreshReplacement {
            retry_grace: chrono::Duration::seconds(grace_secs),
            ..replacement(hash, expires)
        }
    }

    pub async fn refresh_retry_within_grace_gets_the_same_successor(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let (_, family) = token_fixture(s).await;
        let RefreshRotation::Rotated { current, .. } = s
            .rotate_refresh_token("h1", replacement_with_grace("h2", 2000, 60), t(10))
            .await
            .expect("rotate")
        else {
            panic!("expected a rotation");
        };
        // The answer was lost; the phone presents h1 again, 30 s later. The
        // successor's hash is derived again from h1, so it is "h2" again.
        let retry = s
            .rotate_refresh_token("h1", replacement_with_grace("h2", 2040, 60), t(40))
            .await
            .expect("retry");
        let RefreshRotation::Retried { current: again, .. } = retry else {
            panic!("expected the retry to get its successor, got {retry:?}");
        };
        assert_eq!(again.id, current.id);
        assert_eq!(again.token_hash, "h2");
        assert_eq!(again.expires_at, t(2000), "the stored successor, unchanged");
        let h2 = s.get_refresh_token("h2").await.expect("get").expect("h2");
        assert_eq!(h2.revoked_at, None);
        assert_eq!(h2.rotated_at, None);

        // Once the successor has been used, presenting h1 again is reuse,
        // even within the grace.
        s.rotate_refresh_token("h2", replacement_with_grace("h3", 3000, 60), t(45))
            .await
            .expect("rotate h2");
        let replay = s
            .rotate_refresh_token("h1", replacement_with_grace("h2", 2050, 60), t(50))
            .await
            .expect("replay");
        assert!(
            matches!(replay, RefreshRotation::Reused { .. }),
            "{replay:?}"
        );
        let h3 = s.get_refresh_token("h3").await.expect("get").expect("h3");
        assert!(h3.revoked_at.is_some(), "family {family} revoked");
    }

    pub async fn refresh_retry_after_grace_revokes(store: Arc<dyn Store>) {
        let s = store.as_ref();
        token_fixture(s).await;
        s.rotate_refresh_token("h1", replacement_with_grace("h2", 2000, 60), t(10))
            .await
            .expect("rotate");
        let late = s
            .rotate_refresh_token("h1", replacement_with_grace("h2", 2000, 60), t(71))
            .await
            .expect("late retry");
        assert!(matches!(late, RefreshRotation::Reused { .. }), "{late:?}");
        let h2 = s.get_refresh_token("h2").await.expect("get").expect("h2");
        assert!(h2.revoked_at.is_some());
    }

    pub async fn refresh_rotation(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let (user_id, family) = token_fixture(s).await;

        let first = s.get_refresh_token("h1").await.expect("get").expect("h1");
        assert_eq!(first.user_id, user_id);
        assert_eq!(first.expires_at, t(1000));
        assert_eq!(first.rotated_at, None);

        let RefreshRotation::Rotated { previous, current } = s
            .rotate_refresh_token("h1", replacement("h2", 2000), t(10))
            .await
            .expect("rotate")
        else {
            panic!("expected a rotation");
        };
        assert_eq!(previous.id, first.id);
        assert_eq!(current.token_hash, "h2");
        assert_eq!(current.family_id, family);
        assert_eq!(current.user_id, user_id);
        assert_eq!(current.device_id, "phone", "device carried over");
        assert_eq!(current.created_at, t(10));
        assert_eq!(current.expires_at, t(2000));
        let old = s.get_refresh_token("h1").await.expect("get").expect("h1");
        assert_eq!(old.rotated_at, Some(t(10)));
        assert_eq!(old.revoked_at, None);

        let again = s
            .rotate_refresh_token("h2", replacement("h3", 3000), t(20))
            .await
            .expect("rotate");
        assert!(
            matches!(again, RefreshRotation::Rotated { .. }),
            "{again:?}"
        );

        // h1 and h2 (rotated) and h3 (live): all marked revoked.
        assert_eq!(
            s.revoke_refresh_family(&family, t(30))
                .await
                .expect("revoke"),
            3
        );
        assert_eq!(
            s.revoke_refresh_family(&family, t(31))
                .await
                .expect("revoke"),
            0
        );
        let h3 = s.get_refresh_token("h3").await.expect("get").expect("h3");
        assert_eq!(h3.revoked_at, Some(t(30)));
    }

    pub async fn refresh_reuse_revokes_family(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let (user_id, family) = token_fixture(s).await;
        s.rotate_refresh_token("h1", replacement("h2", 2000), t(10))
            .await
            .expect("rotate");
        s.rotate_refresh_token("h2", replacement("h3", 3000), t(20))
            .await
            .expect("rotate");

        // h1 was rotated long ago: someone replays it.
        let reuse = s
            .rotate_refresh_token("h1", replacement("h4", 4000), t(30))
            .await
            .expect("rotate");
        assert_eq!(
            reuse,
            RefreshRotation::Reused {
                family_id: family.clone(),
                user_id
            }
        );
        assert_eq!(
            s.get_refresh_token("h4").await.expect("get"),
            None,
            "no replacement stored on reuse"
        );
        for hash in ["h1", "h2", "h3"] {
            let token = s
                .get_refresh_token(hash)
                .await
                .expect("get")
                .expect("token");
            assert_eq!(token.revoked_at, Some(t(30)), "{hash} revoked");
        }
        // The live token of the family is dead too.
        assert_eq!(
            s.rotate_refresh_token("h3", replacement("h5", 5000), t(40))
                .await
                .expect("rotate"),
            RefreshRotation::Revoked
        );
    }

    pub async fn refresh_expired_revoked_and_unknown(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let (_, family) = token_fixture(s).await;
        assert_eq!(
            s.rotate_refresh_token("h1", replacement("h2", 9000), t(1000))
                .await
                .expect("rotate"),
            RefreshRotation::Expired,
            "expiry is exclusive"
        );
        let h1 = s.get_refresh_token("h1").await.expect("get").expect("h1");
        assert_eq!(h1.rotated_at, None, "an expired token is not rotated");

        s.revoke_refresh_family(&family, t(5))
            .await
            .expect("revoke");
        assert_eq!(
            s.rotate_refresh_token("h1", replacement("h2", 9000), t(6))
                .await
                .expect("rotate"),
            RefreshRotation::Revoked
        );
        assert!(matches!(
            s.rotate_refresh_token("nope", replacement("h2", 9000), t(6))
                .await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn refresh_concurrent_presentations(store: Arc<dyn Store>) {
        let (_, _) = token_fixture(store.as_ref()).await;
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .rotate_refresh_token("h1", replacement(&format!("new{i}"), 2000), t(10))
                        .await
                })
            })
            .collect();
        let mut rotated = 0;
        let mut reused = 0;
        for task in tasks {
            match task.await.expect("join").expect("rotate") {
                RefreshRotation::Rotated { .. } => rotated += 1,
                RefreshRotation::Reused { .. } | RefreshRotation::Revoked => reused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(rotated, 1, "exactly one presentation wins");
        assert_eq!(reused, 5);
    }

    pub async fn documents_append_and_load(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;

        assert_eq!(
            s.get_document_meta(&named_id("doc-a")).await.expect("meta"),
            None
        );
        assert_eq!(
            s.load_document(&named_id("doc-a")).await.expect("load"),
            None
        );
        assert!(matches!(
            s.append_changes(write("doc-a", None, b"x", 0)).await,
            Err(StoreError::NotFound)
        ));

        let first = append(s, "doc-a", Some(alice.id), b"chunk-1", 10).await;
        assert!(first.created);
        assert_eq!(first.pending_chunks(), 1);
        assert_eq!(first.meta.kind, StoredKind::Diary);
        assert_eq!(first.meta.owner_user_id, alice.id);
        assert_eq!(first.meta.year, Some(2025));
        assert_eq!(first.meta.created_at, t(10));
        assert_eq!(first.meta.updated_at, t(10));
        assert_eq!(first.meta.snapshot_heads, None);

        // The owner again (create allowed but not needed) and a change
        // without create rights (a supervisor's action).
        let second = append(s, "doc-a", Some(alice.id), b"chunk-22", 20).await;
        assert!(!second.created);
        assert!(second.chunk_id > first.chunk_id);
        let third = append(s, "doc-a", None, b"chunk-333", 30).await;
        assert_eq!(third.pending_chunks(), 3);
        assert_eq!(third.meta.created_at, t(10));
        assert_eq!(third.meta.updated_at, t(30));

        let loaded = load(s, "doc-a").await;
        assert_eq!(loaded.meta, third.meta);
        assert_eq!(loaded.snapshot, None);
        let chunks: Vec<&[u8]> = loaded.chunks.iter().map(|c| c.data.as_slice()).collect();
        assert_eq!(chunks, [&b"chunk-1"[..], b"chunk-22", b"chunk-333"]);
        let ids: Vec<i64> = loaded.chunks.iter().map(|c| c.id).collect();
        assert_eq!(ids, [first.chunk_id, second.chunk_id, third.chunk_id]);
        assert_eq!(
            s.get_document_meta(&named_id("doc-a")).await.expect("meta"),
            Some(third.meta)
        );

        // Binary data survives byte for byte.
        let binary: Vec<u8> = (0..=255).collect();
        s.append_changes(DocumentWrite {
            heads: None,
            document_id: named_id("doc-b"),
            create: Some(NewDocument {
                kind: StoredKind::Contacts,
                owner_user_id: alice.id,
                year: None,
            }),
            data: binary.clone(),
            at: t(40),
            ledger: None,
            actors: Vec::new(),
            based_on: None,
            sync: None,
        })
        .await
        .expect("append");
        let b = load(s, "doc-b").await;
        assert_eq!(b.meta.kind, StoredKind::Contacts);
        assert_eq!(b.meta.year, None);
        assert_eq!(b.chunks[0].data, binary);
    }

    pub async fn document_ownership(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let mallory = common::user(s, "mallory", Role::Cadre, &unit).await;
        append(s, "doc-a", Some(alice.id), b"mine", 0).await;

        let stolen = s
            .append_changes(write("doc-a", Some(mallory.id), b"theirs", 1))
            .await;
        assert!(matches!(stolen, Err(StoreError::Conflict(_))), "{stolen:?}");
        let doc = load(s, "doc-a").await;
        assert_eq!(doc.meta.owner_user_id, alice.id);
        assert_eq!(doc.chunks.len(), 1, "the refused write left nothing");

        let unknown_owner = s
            .append_changes(write("doc-z", Some(alice.id + mallory.id + 1000), b"x", 2))
            .await;
        assert!(
            matches!(unknown_owner, Err(StoreError::Conflict(_))),
            "{unknown_owner:?}"
        );
        assert_eq!(
            s.get_document_meta(&named_id("doc-z")).await.expect("meta"),
            None
        );
    }

    pub async fn documents_by_owner_and_unit(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let county = common::unit(s, "county", None, "county").await;
        let town1 = common::unit(s, "town1", Some(&county), "town").await;
        let town2 = common::unit(s, "town2", Some(&county), "town").await;
        let v1 = common::unit(s, "village1", Some(&town1), "village").await;
        let v3 = common::unit(s, "village3", Some(&town2), "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &v1).await;
        let carol = common::user(s, "carol", Role::Cadre, &v3).await;
        for (id, owner) in [("a2", &alice), ("a1", &alice), ("c1", &carol)] {
            append(s, id, Some(owner.id), b"x", 0).await;
        }

        let ids = |docs: Vec<server::store::DocumentRow>| -> Vec<String> {
            docs.into_iter().map(|d| d.id.to_string()).collect()
        };
        assert_eq!(
            ids(s.list_documents_for_owner(alice.id).await.expect("list")),
            stored_ids(&["a1", "a2"])
        );
        assert_eq!(
            ids(s.list_documents_for_owner(carol.id).await.expect("list")),
            stored_ids(&["c1"])
        );
        let town1_units = subtree_ids(s, town1.id).await;
        assert_eq!(
            ids(s.list_documents_in_units(&town1_units).await.expect("list")),
            stored_ids(&["a1", "a2"])
        );
        let all = subtree_ids(s, county.id).await;
        assert_eq!(
            ids(s.list_documents_in_units(&all).await.expect("list")),
            stored_ids(&["a1", "a2", "c1"])
        );
        assert!(
            s.list_documents_in_units(&[])
                .await
                .expect("list")
                .is_empty()
        );
    }

    /// What the per-user sync limits count: documents and their snapshot
    /// plus chunk bytes, per owner.
    pub async fn owner_usage(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let carol = common::user(s, "carol", Role::Cadre, &unit).await;
        let usage = |documents, bytes| OwnerUsage { documents, bytes };
        assert_eq!(s.owner_usage(alice.id).await.expect("usage"), usage(0, 0));
        let c1 = append(s, "a1", Some(alice.id), b"12345", 1).await;
        let c2 = append(s, "a1", None, b"123", 2).await;
        append(s, "a2", Some(alice.id), b"1234567", 3).await;
        append(s, "c1", Some(carol.id), b"12", 4).await;
        assert_eq!(s.owner_usage(alice.id).await.expect("usage"), usage(2, 15));
        assert_eq!(s.owner_usage(carol.id).await.expect("usage"), usage(1, 2));
        // A snapshot counts as the chunks it replaced did not.
        s.compact(Compaction {
            document_id: named_id("a1"),
            base_heads: None,
            snapshot: b"1234".to_vec(),
            heads: "h".to_owned(),
            replaced_chunk_ids: vec![c1.chunk_id, c2.chunk_id],
        })
        .await
        .expect("compact");
        append(s, "a1", None, b"1", 5).await;
        assert_eq!(s.owner_usage(alice.id).await.expect("usage"), usage(2, 12));
    }

    pub async fn compaction(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let c1 = append(s, "doc", Some(alice.id), b"c1", 1).await;
        let c2 = append(s, "doc", None, b"c2", 2).await;

        s.compact(Compaction {
            document_id: named_id("doc"),
            base_heads: None,
            snapshot: b"snapshot-1".to_vec(),
            heads: "heads-1".to_owned(),
            replaced_chunk_ids: vec![c1.chunk_id, c2.chunk_id],
        })
        .await
        .expect("compact");
        let doc = load(s, "doc").await;
        assert_eq!(doc.snapshot.as_deref(), Some(&b"snapshot-1"[..]));
        assert!(doc.chunks.is_empty());
        assert_eq!(doc.meta.snapshot_heads.as_deref(), Some("heads-1"));
        assert_eq!(doc.meta.updated_at, t(2), "compaction is not a change");

        // New writes land after the snapshot; a partial compaction folds only
        // the listed chunks.
        let c3 = append(s, "doc", None, b"c3", 3).await;
        assert_eq!(c3.pending_chunks(), 1);
        let c4 = append(s, "doc", None, b"c4", 4).await;
        s.compact(Compaction {
            document_id: named_id("doc"),
            base_heads: Some("heads-1".to_owned()),
            snapshot: b"snapshot-2".to_vec(),
            heads: "heads-2".to_owned(),
            replaced_chunk_ids: vec![c3.chunk_id, c3.chunk_id],
        })
        .await
        .expect("compact");
        let doc = load(s, "doc").await;
        assert_eq!(doc.snapshot.as_deref(), Some(&b"snapshot-2"[..]));
        let ids: Vec<i64> = doc.chunks.iter().map(|c| c.id).collect();
        assert_eq!(ids, [c4.chunk_id]);
        // The listed id twice is one chunk folded: one waits, and the next.
        assert_eq!(doc.meta.pending_chunks, 1);
        assert_eq!(append(s, "doc", None, b"c5", 5).await.pending_chunks(), 2);
    }

    /// Each write stores the heads it carries on its document's row, sorted,
    /// and a write that does not know them clears them; a refused write and
    /// a compaction leave them; heads a loader read fill a row without any
    /// only when nothing was appended since. The listing names the owner's
    /// documents only.
    pub async fn document_heads_are_listed_for_their_owner(store: Arc<dyn Store>) {
        use sync_core::automerge::ChangeHash;
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let carol = common::user(s, "carol", Role::Cadre, &unit).await;
        let h = |n: u8| ChangeHash([n; 32]);
        let with_heads =
            |id: &str, owner: Option<i64>, heads: Option<Vec<ChangeHash>>, at| DocumentWrite {
                heads,
                ..write(id, owner, b"x", at)
            };
        let listed = |docs: Vec<sync_core::protocol::ListedDocument>| {
            docs.into_iter()
                .map(|d| (d.id.to_string(), d.heads))
                .collect::<Vec<_>>()
        };
        let first = s
            .append_changes(with_heads("a1", Some(alice.id), Some(vec![h(1)]), 1))
            .await
            .expect("a1");
        let first_copy = load(s, "a1").await.version();
        s.append_changes(with_heads("a2", Some(alice.id), None, 1))
            .await
            .expect("a2");
        s.append_changes(with_heads("c1", Some(carol.id), Some(vec![h(9)]), 1))
            .await
            .expect("c1");
        let a1 = named_id("a1").to_string();
        let a2 = named_id("a2").to_string();
        let mut expected = vec![(a1.clone(), Some(vec![h(1)])), (a2.clone(), None)];
        expected.sort();
        assert_eq!(
            listed(s.list_document_heads(alice.id).await.expect("list")),
            expected
        );

        // Two heads, given in any order, come back sorted.
        let second = s
            .append_changes(with_heads("a1", None, Some(vec![h(3), h(2)]), 2))
            .await
            .expect("a1 again");
        let heads_of = |docs: Vec<(String, Option<Vec<ChangeHash>>)>, id: &str| {
            docs.into_iter()
                .find(|(d, _)| d == id)
                .and_then(|(_, heads)| heads)
        };
        let now = listed(s.list_document_heads(alice.id).await.expect("list"));
        assert_eq!(heads_of(now, &a1), Some(vec![h(2), h(3)]));

        // A write made on an older copy is refused and leaves them.
        let stale = s
            .append_changes(DocumentWrite {
                based_on: Some(first_copy.clone()),
                ..with_heads("a1", None, Some(vec![h(4)]), 3)
            })
            .await;
        assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
        s.compact(Compaction {
            document_id: named_id("a1"),
            base_heads: None,
            snapshot: b"snapshot".to_vec(),
            heads: "snapshot-heads".to_owned(),
            replaced_chunk_ids: vec![first.chunk_id, second.chunk_id],
        })
        .await
        .expect("compact");
        let now = listed(s.list_document_heads(alice.id).await.expect("list"));
        assert_eq!(heads_of(now, &a1), Some(vec![h(2), h(3)]));

        // A write that does not know the heads leaves none behind.
        s.append_changes(with_heads("a1", None, None, 4))
            .await
            .expect("a1 without heads");
        let now = listed(s.list_document_heads(alice.id).await.expect("list"));
        assert_eq!(heads_of(now, &a1), None);

        // Heads read from an older state do not fill them; heads read from
        // the current one do, once.
        let fill = |heads: Vec<ChangeHash>, version| async move {
            s.fill_document_heads(&named_id("a1"), &heads, &version)
                .await
                .expect("fill")
        };
        assert!(!fill(vec![h(5)], first_copy.clone()).await);
        let current = load(s, "a1").await.version();
        assert!(fill(vec![h(7), h(6)], current.clone()).await);
        assert!(!fill(vec![h(8)], current).await, "filled once");
        let now = listed(s.list_document_heads(alice.id).await.expect("list"));
        assert_eq!(heads_of(now, &a1), Some(vec![h(6), h(7)]));
        assert_eq!(
            listed(s.list_document_heads(carol.id).await.expect("list")),
            vec![(named_id("c1").to_string(), Some(vec![h(9)]))]
        );
    }

    /// A document's row keeps the id of its last chunk and how many chunks
    /// wait for compaction, through appends and compactions; a write made
    /// on a copy ([`DocumentWrite::based_on`]) is refused, and handed back,
    /// when anything was stored past the copy, and made when the copy is
    /// current, also when a compaction left the copy with no chunk at all.
    pub async fn chunk_counts_and_stale_writes(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let on = |version: &StoredVersion, data: &[u8], at: i64| DocumentWrite {
            based_on: Some(version.clone()),
            sync: None,
            ..write("doc", None, data, at)
        };
        let meta = |o: &AppendOutcome| (o.meta.last_chunk_id, o.meta.pending_chunks);

        let c1 = append(s, "doc", Some(alice.id), b"c1", 1).await;
        assert_eq!(meta(&c1), (c1.chunk_id, 1));
        let c2 = append(s, "doc", None, b"c2", 2).await;
        assert_eq!(meta(&c2), (c2.chunk_id, 2));
        assert_eq!(c2.pending_chunks(), 2);
        let copy = load(s, "doc").await.version();
        assert_eq!(copy.last_chunk_id, c2.chunk_id);

        let c3 = s
            .append_changes(on(&copy, b"c3", 3))
            .await
            .expect("a write on a current copy");
        assert_eq!(meta(&c3), (c3.chunk_id, 3));
        match s.append_changes(on(&copy, b"late", 4)).await {
            Err(StoreError::Stale(StaleWrite(refused))) => assert_eq!(refused.data, b"late"),
            other => panic!("a write on a copy that missed c3: {other:?}"),
        }
        let stored = load(s, "doc").await;
        assert_eq!(stored.chunks.len(), 3, "the refused write left nothing");
        assert_eq!(stored.meta, c3.meta);

        s.compact(Compaction {
            document_id: named_id("doc"),
            base_heads: None,
            snapshot: b"s1".to_vec(),
            heads: "h1".to_owned(),
            replaced_chunk_ids: vec![c1.chunk_id, c2.chunk_id],
        })
        .await
        .expect("compact");
        let row = s
            .get_document_meta(&named_id("doc"))
            .await
            .expect("meta")
            .expect("doc");
        assert_eq!((row.last_chunk_id, row.pending_chunks), (c3.chunk_id, 1));
        s.compact(Compaction {
            document_id: named_id("doc"),
            base_heads: Some("h1".to_owned()),
            snapshot: b"s2".to_vec(),
            heads: "h2".to_owned(),
            replaced_chunk_ids: vec![c3.chunk_id],
        })
        .await
        .expect("compact");
        let stored = load(s, "doc").await;
        assert!(stored.chunks.is_empty());
        assert_eq!(
            (stored.meta.last_chunk_id, stored.meta.pending_chunks),
            (c3.chunk_id, 0)
        );

        // A copy of the snapshot alone is current: its version carries the
        // last chunk folded into it.
        let snapshot_only = stored.version();
        assert_eq!(snapshot_only.last_chunk_id, c3.chunk_id);
        let c4 = s
            .append_changes(on(&snapshot_only, b"c4", 5))
            .await
            .expect("a write on a copy of the snapshot");
        assert_eq!(meta(&c4), (c4.chunk_id, 1));
        // A copy of the older snapshot is not, whatever its last chunk.
        let older = StoredVersion {
            snapshot_heads: Some("h1".to_owned()),
            last_chunk_id: c4.chunk_id,
        };
        assert!(matches!(
            s.append_changes(on(&older, b"old", 6)).await,
            Err(StoreError::Stale(_))
        ));

        let since = |version| async move {
            match s.load_document_since(&named_id("doc"), &version).await {
                Ok(Some(DocumentSince::Added { chunks, .. })) => {
                    chunks.iter().map(|c| c.id).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(since(snapshot_only).await, [c4.chunk_id]);
        assert_eq!(
            since(load(s, "doc").await.version()).await,
            Vec::<i64>::new()
        );
    }

    pub async fn compaction_conflicts(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let c1 = append(s, "doc", Some(alice.id), b"c1", 1).await;
        let c2 = append(s, "doc", None, b"c2", 2).await;
        let compaction = |base: Option<&str>, ids: Vec<i64>| Compaction {
            document_id: named_id("doc"),
            base_heads: base.map(str::to_owned),
            snapshot: b"s".to_vec(),
            heads: "h".to_owned(),
            replaced_chunk_ids: ids,
        };

        // The caller thinks there is a snapshot; there is none.
        let stale = s
            .compact(compaction(Some("other"), vec![c1.chunk_id]))
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        // A chunk that is not there (already folded by someone else).
        let missing = s
            .compact(compaction(None, vec![c1.chunk_id, c2.chunk_id + 1000]))
            .await;
        assert!(
            matches!(missing, Err(StoreError::Conflict(_))),
            "{missing:?}"
        );
        let untouched = load(s, "doc").await;
        assert_eq!(untouched.snapshot, None);
        assert_eq!(
            untouched.chunks.len(),
            2,
            "refused compactions change nothing"
        );

        // Two compactions from the same load: the second loses.
        s.compact(compaction(None, vec![c1.chunk_id]))
            .await
            .expect("first compaction");
        let loser = s
            .compact(compaction(None, vec![c1.chunk_id, c2.chunk_id]))
            .await;
        assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");

        assert!(matches!(
            s.compact(Compaction {
                document_id: named_id("nope"),
                ..compaction(None, vec![])
            })
            .await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn concurrent_appends(store: Arc<dyn Store>) {
        let unit = common::unit(store.as_ref(), "village1", None, "village").await;
        let alice = common::user(store.as_ref(), "alice", Role::Cadre, &unit).await;
        // Every writer may create the document: exactly one does, and no
        // write is lost or fails.
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_changes(write("busy", Some(alice.id), &[i], i64::from(i)))
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            if task.await.expect("join").expect("append").created {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        let doc = store
            .load_document(&named_id("busy"))
            .await
            .expect("load")
            .expect("doc");
        let mut bytes: Vec<u8> = doc.chunks.iter().map(|c| c.data[0]).collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0..16u8).collect::<Vec<_>>());
    }

    /// Many writes at once, some of which must fail (on SQLite they share
    /// one group commit): each failure is its caller's alone, the others
    /// are all stored, and a failed write leaves nothing behind.
    pub async fn concurrent_writes_fail_alone(store: Arc<dyn Store>) {
        let unit = common::unit(store.as_ref(), "village1", None, "village").await;
        let alice = common::user(store.as_ref(), "alice", Role::Cadre, &unit).await;
        let bob = common::user(store.as_ref(), "bob", Role::Cadre, &unit).await;
        let claim = |user_id| ActorClaim {
            actor: "a1ce".to_owned(),
            user_id,
            device_id: "phone".to_owned(),
            via_server: false,
        };
        store
            .append_changes(DocumentWrite {
                actors: vec![claim(alice.id)],
                ..write("alices", Some(alice.id), b"first", 1)
            })
            .await
            .expect("alice's document");

        // Each write comes from a sync connection: its audit row and the
        // device's sync state must be stored with it, or not at all.
        let by_sync = |write: DocumentWrite, user_id, i: u8| DocumentWrite {
            sync: Some(SyncRecords {
                user_id,
                device_id: format!("sync-{i}"),
                remote_addr: None,
                changes_added: 1,
                changes_waiting: 0,
                sync_state: Some(SyncStateWrite {
                    document_id: write.document_id,
                    user_id,
                    device_id: format!("sync-{i}"),
                    state: vec![i],
                    at: write.at,
                }),
                owner_limits: None,
            }),
            ..write
        };

        /// What a write must come to.
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Expect {
            Created,
            NotFound,
            Conflict,
            Wrote,
        }
        let mut tasks = Vec::new();
        for i in 0..60u8 {
            let store = store.clone();
            let (alice, bob) = (alice.id, bob.id);
            tasks.push(tokio::spawn(async move {
                match i % 5 {
                    0 | 1 => {
                        let r = store
                            .append_changes(by_sync(
                                write(&format!("new-{i}"), Some(alice), &[i], 2),
                                alice,
                                i,
                            ))
                            .await;
                        assert!(r.expect("a new document").created);
                        (i, Expect::Created)
                    }
                    2 => {
                        let r = store
                            .append_changes(by_sync(
                                write(&format!("missing-{i}"), None, &[i], 2),
                                alice,
                                i,
                            ))
                            .await;
                        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
                        (i, Expect::NotFound)
                    }
                    3 => {
                        // Refused only once its chunk is written: Alice's
                        // actor claimed for Bob.
                        let r = store
                            .append_changes(by_sync(
                                DocumentWrite {
                                    actors: vec![claim(bob)],
                                    ..write("alices", None, &[i], 2)
                                },
                                bob,
                                i,
                            ))
                            .await;
                        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
                        (i, Expect::Conflict)
                    }
                    _ => {
                        store
                            .save_sync_state(SyncStateWrite {
                                document_id: named_id("alices"),
                                user_id: alice,
                                device_id: format!("d{i}"),
                                state: vec![i],
                                at: t(3),
                            })
                            .await
                            .expect("sync state");
                        store
                            .append_audit(NewAuditEntry {
                                at: t(3),
                                user_id: Some(alice),
                                action: "document.write".to_owned(),
                                target: format!("w{i}"),
                                detail: String::new(),
                                remote_addr: None,
                            })
                            .await
                            .expect("audit");
                        (i, Expect::Wrote)
                    }
                }
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("join"));
        }
        let s = store.as_ref();
        let audit = s.list_audit(1_000).await.expect("audit");
        let audited = |i: u8| {
            audit
                .iter()
                .filter(|e| e.detail.ends_with(&format!("device \"sync-{i}\"")))
                .collect::<Vec<_>>()
        };
        for (i, expect) in outcomes {
            match expect {
                Expect::Created => {
                    let id = named_id(&format!("new-{i}"));
                    let doc = load(s, &format!("new-{i}")).await;
                    assert_eq!(doc.chunks.len(), 1);
                    assert_eq!(doc.chunks[0].data, vec![i]);
                    let rows = audited(i);
                    assert_eq!(rows.len(), 1, "the audit row of write {i}");
                    assert_eq!(
                        (rows[0].action.as_str(), rows[0].target.as_str()),
                        ("document.create", id.to_string().as_str())
                    );
                    assert_eq!(
                        s.load_sync_state(&id, alice.id, &format!("sync-{i}"))
                            .await
                            .expect("load"),
                        Some(vec![i])
                    );
                }
                Expect::NotFound | Expect::Conflict => {
                    assert!(audited(i).is_empty(), "refused write {i} audited");
                    assert!(
                        s.load_document(&named_id(&format!("missing-{i}")))
                            .await
                            .expect("load")
                            .is_none()
                    );
                    for (doc, user) in [
                        (named_id(&format!("missing-{i}")), alice.id),
                        (named_id("alices"), bob.id),
                    ] {
                        assert_eq!(
                            s.load_sync_state(&doc, user, &format!("sync-{i}"))
                                .await
                                .expect("load"),
                            None,
                            "refused write {i} kept a sync state"
                        );
                    }
                }
                Expect::Wrote => assert_eq!(
                    s.load_sync_state(&named_id("alices"), alice.id, &format!("d{i}"))
                        .await
                        .expect("load"),
                    Some(vec![i])
                ),
            }
        }
        // Bob's refused writes added nothing to Alice's document.
        let alices = load(s, "alices").await;
        assert_eq!(alices.chunks.len(), 1);
        assert_eq!(alices.chunks[0].data, b"first");
        let actors = s
            .document_actors(&named_id("alices"))
            .await
            .expect("actors");
        assert_eq!(actors.len(), 1);
        assert_eq!(actors[0].user_id, alice.id);
        assert_eq!(
            audit
                .iter()
                .filter(|e| e.action == "document.write" && e.target.starts_with('w'))
                .count(),
            12
        );
    }

    pub async fn audit_log(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let entry = |at: i64, action: &str, user_id: Option<i64>| NewAuditEntry {
            at: t(at),
            user_id,
            action: action.to_owned(),
            target: "cadre01".to_owned(),
            detail: "device=phone".to_owned(),
            remote_addr: Some("192.0.2.7".to_owned()),
        };
        let first = s
            .append_audit(entry(1, "auth.login_failed", None))
            .await
            .expect("audit");
        let second = s
            .append_audit(entry(2, "auth.login", Some(7)))
            .await
            .expect("audit");
        let third = s
            .append_audit(NewAuditEntry {
                remote_addr: None,
                ..entry(3, "auth.logout", Some(7))
            })
            .await
            .expect("audit");
        assert!(first < second && second < third);

        let rows = s.list_audit(2).await.expect("list");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, third);
        assert_eq!(rows[0].action, "auth.logout");
        assert_eq!(rows[0].remote_addr, None);
        assert_eq!(rows[1].id, second);
        assert_eq!(rows[1].at, t(2));
        assert_eq!(rows[1].user_id, Some(7));
        assert_eq!(rows[1].target, "cadre01");
        assert_eq!(rows[1].detail, "device=phone");
        assert_eq!(rows[1].remote_addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(s.list_audit(10).await.expect("list").len(), 3);
    }

    pub async fn sync_states(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let save = |device: &str, state: &[u8], seconds| {
            s.save_sync_state(SyncStateWrite {
                document_id: named_id("doc-a"),
                user_id: alice.id,
                device_id: device.to_owned(),
                state: state.to_vec(),
                at: t(seconds),
            })
        };
        // No state for a document that does not exist, and none is kept.
        save("phone", b"state-0", 1).await.expect("save");
        assert_eq!(
            s.load_sync_state(&named_id("doc-a"), alice.id, "phone")
                .await
                .expect("load"),
            None
        );
        append(s, "doc-a", Some(alice.id), b"chunk-1", 10).await;
        save("phone", b"state-1", 11).await.expect("save");
        save("tablet", b"state-t", 12).await.expect("save");
        // Saving again replaces; each device keeps its own.
        save("phone", b"state-2", 13).await.expect("save");
        let doc_a = named_id("doc-a");
        let load = |device: &'static str| s.load_sync_state(&doc_a, alice.id, device);
        assert_eq!(
            load("phone").await.expect("load"),
            Some(b"state-2".to_vec())
        );
        assert_eq!(
            load("tablet").await.expect("load"),
            Some(b"state-t".to_vec())
        );
        assert_eq!(load("laptop").await.expect("load"), None);

        // Read with the document: the same state, whether the copy is up
        // to date or lacks a chunk; nothing for a missing document.
        let stored = s
            .load_document(&doc_a)
            .await
            .expect("load")
            .expect("stored");
        let with_state = |version: StoredVersion, device: &'static str| async move {
            match s
                .load_document_since_with_sync_state(&doc_a, &version, alice.id, device)
                .await
                .expect("load with state")
            {
                (Some(DocumentSince::Added { chunks, .. }), state) => {
                    (chunks.iter().map(|c| c.id).collect::<Vec<_>>(), state)
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            with_state(stored.version(), "phone").await,
            (Vec::new(), Some(b"state-2".to_vec()))
        );
        assert_eq!(
            with_state(StoredVersion::default(), "tablet").await,
            (
                stored.chunks.iter().map(|c| c.id).collect(),
                Some(b"state-t".to_vec())
            )
        );
        assert_eq!(
            with_state(stored.version(), "laptop").await,
            (Vec::new(), None)
        );
        assert_eq!(
            s.load_document_since_with_sync_state(
                &named_id("nowhere"),
                &StoredVersion::default(),
                alice.id,
                "phone"
            )
            .await
            .expect("load with state"),
            (None, None)
        );
    }
    /// A sync connection's write carries its audit row and the device's
    /// sync state: both are written in the chunk's transaction, and a write
    /// that is refused writes neither.
    pub async fn a_sync_write_records_its_audit_row_and_sync_state(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let doc = named_id("doc");
        let records = |changes_added, state: &[u8], at| SyncRecords {
            user_id: alice.id,
            device_id: "phone".to_owned(),
            remote_addr: Some("10.0.0.7".to_owned()),
            changes_added,
            changes_waiting: 0,
            sync_state: Some(SyncStateWrite {
                document_id: doc,
                user_id: alice.id,
                device_id: "phone".to_owned(),
                state: state.to_vec(),
                at: t(at),
            }),
            owner_limits: None,
        };
        let by_sync = |owner, data: &[u8], at, changes, state: &[u8]| DocumentWrite {
            sync: Some(records(changes, state, at)),
            ..write("doc", owner, data, at)
        };
        let sync_state = || s.load_sync_state(&doc, alice.id, "phone");
        let writes = || async {
            s.list_audit(100)
                .await
                .expect("audit")
                .into_iter()
                .filter(|e| e.target == doc.to_string())
                .collect::<Vec<_>>()
        };

        let created = s
            .append_changes(by_sync(Some(alice.id), b"c1", 1, 2, b"state-1"))
            .await
            .expect("the first write");
        let audit = writes().await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, "document.create");
        assert_eq!(audit[0].user_id, Some(alice.id));
        assert_eq!(audit[0].remote_addr.as_deref(), Some("10.0.0.7"));
        assert_eq!(audit[0].at, t(1));
        assert_eq!(
            audit[0].detail,
            format!(
                "sync: 2 change(s), chunk {}, device \"phone\"",
                created.chunk_id
            )
        );
        assert_eq!(sync_state().await.expect("load"), Some(b"state-1".to_vec()));

        let copy = load(s, "doc").await.version();
        let second = s
            .append_changes(DocumentWrite {
                based_on: Some(copy.clone()),
                ..by_sync(None, b"c2", 2, 1, b"state-2")
            })
            .await
            .expect("a write on a current copy");
        let audit = writes().await;
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].action, "document.write");
        assert!(
            audit[0]
                .detail
                .contains(&format!("sync: 1 change(s), chunk {}", second.chunk_id)),
            "{}",
            audit[0].detail
        );
        assert_eq!(sync_state().await.expect("load"), Some(b"state-2".to_vec()));

        // Refused (the copy missed `c2`): no audit row, the state as it was.
        assert!(matches!(
            s.append_changes(DocumentWrite {
                based_on: Some(copy),
                ..by_sync(None, b"late", 3, 1, b"state-late")
            })
            .await,
            Err(StoreError::Stale(_))
        ));
        assert_eq!(writes().await.len(), 2);
        assert_eq!(sync_state().await.expect("load"), Some(b"state-2".to_vec()));
        // A device without an id keeps no state; its write is audited.
        s.append_changes(DocumentWrite {
            sync: Some(SyncRecords {
                device_id: String::new(),
                sync_state: None,
                ..records(1, b"", 4)
            }),
            ..write("doc", None, b"c3", 4)
        })
        .await
        .expect("a write from a device without an id");
        assert_eq!(writes().await.len(), 3);
        assert_eq!(sync_state().await.expect("load"), Some(b"state-2".to_vec()));
    }

    /// A sync write carries its owner's limits: the store checks them in
    /// the write's transaction, against what the owner's documents take
    /// then, and a write that would break one stores nothing (no chunk, no
    /// document, no audit row, no sync state). Writes without limits (the
    /// server's own) are not checked.
    pub async fn a_sync_write_over_its_owners_limits_stores_nothing(store: Arc<dyn Store>) {
        let s = store.as_ref();
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let carol = common::user(s, "carol", Role::Cadre, &unit).await;
        let limits = OwnerLimits {
            documents: 2,
            bytes: 30,
        };
        let by_sync = |id: &str, user: i64, creates: bool, len: usize, at| DocumentWrite {
            sync: Some(SyncRecords {
                user_id: user,
                device_id: "phone".to_owned(),
                remote_addr: None,
                changes_added: 1,
                changes_waiting: 0,
                sync_state: Some(SyncStateWrite {
                    document_id: named_id(id),
                    user_id: user,
                    device_id: "phone".to_owned(),
                    state: vec![at as u8],
                    at: t(at),
                }),
                owner_limits: Some(limits),
            }),
            ..write(id, creates.then_some(user), &vec![b'x'; len], at)
        };
        let audit_rows = || async { s.list_audit(100).await.expect("audit").len() };

        s.append_changes(by_sync("a1", alice.id, true, 10, 1))
            .await
            .expect("a first document");
        s.append_changes(by_sync("a1", alice.id, false, 15, 2))
            .await
            .expect("25 bytes of 30");
        let (before, audited) = (load(s, "a1").await, audit_rows().await);
        let over = s
            .append_changes(by_sync("a1", alice.id, false, 10, 3))
            .await;
        assert!(
            matches!(
                over,
                Err(StoreError::OverLimit(OverLimit::Bytes {
                    would_take: 35,
                    limit: 30
                }))
            ),
            "{over:?}"
        );
        assert_eq!(load(s, "a1").await.chunks, before.chunks);
        assert_eq!(audit_rows().await, audited);
        assert_eq!(
            s.load_sync_state(&named_id("a1"), alice.id, "phone")
                .await
                .expect("state"),
            Some(vec![2])
        );

        // A second document fits; a third is one too many.
        s.append_changes(by_sync("a2", alice.id, true, 1, 4))
            .await
            .expect("a second document");
        let third = s.append_changes(by_sync("a3", alice.id, true, 1, 5)).await;
        assert!(
            matches!(
                third,
                Err(StoreError::OverLimit(OverLimit::Documents {
                    owned: 2,
                    limit: 2
                }))
            ),
            "{third:?}"
        );
        assert_eq!(s.load_document(&named_id("a3")).await.expect("load"), None);
        assert_eq!(
            s.owner_usage(alice.id).await.expect("usage"),
            OwnerUsage {
                documents: 2,
                bytes: 26
            }
        );

        // Another owner's documents do not count; the server's own write
        // is not checked.
        s.append_changes(by_sync("c1", carol.id, true, 30, 6))
            .await
            .expect("carol's first document");
        append(s, "a1", None, &[b'y'; 10], 7).await;
        assert_eq!(s.owner_usage(alice.id).await.expect("usage").bytes, 36);
    }
}

/// A database migrated before snapshots had a table of their own
/// (`document_snapshots`) keeps them: the migration moves each one there.
/// The old layout is made back by hand from a migrated store, then the
/// migration runs again.
mod snapshots_migration {
    use super::*;
    use server::store::ConnectOptions;
    use server::store::postgres::PostgresStore;
    use server::store::sqlite::SqliteStore;

    const VERSION: i64 = 20250612000000;

    /// A compacted document and one without a snapshot, in `s`.
    async fn seed(s: &dyn Store) {
        let unit = common::unit(s, "village1", None, "village").await;
        let alice = common::user(s, "alice", Role::Cadre, &unit).await;
        let c1 = s
            .append_changes(cases::write("doc", Some(alice.id), b"c1", 1))
            .await
            .expect("append");
        s.compact(Compaction {
            document_id: named_id("doc"),
            base_heads: None,
            snapshot: b"the snapshot".to_vec(),
            heads: "h".to_owned(),
            replaced_chunk_ids: vec![c1.chunk_id],
        })
        .await
        .expect("compact");
        s.append_changes(cases::write("other", Some(alice.id), b"c2", 2))
            .await
            .expect("append");
    }

    /// The statements that put the snapshots back into `documents`.
    fn old_layout(blob: &str) -> Vec<String> {
        vec![
            format!("ALTER TABLE documents ADD COLUMN snapshot {blob}"),
            "UPDATE documents SET snapshot = (SELECT s.snapshot FROM document_snapshots s
                                                WHERE s.document_id = documents.id)"
                .to_owned(),
            "DROP TABLE document_snapshots".to_owned(),
            format!("DELETE FROM _sqlx_migrations WHERE version = {VERSION}"),
        ]
    }

    async fn check(s: &dyn Store) {
        let doc = s
            .load_document(&named_id("doc"))
            .await
            .expect("load")
            .expect("doc");
        assert_eq!(doc.snapshot.as_deref(), Some(&b"the snapshot"[..]));
        assert!(doc.chunks.is_empty());
        let other = s
            .load_document(&named_id("other"))
            .await
            .expect("load")
            .expect("other");
        assert_eq!(other.snapshot, None);
        assert_eq!(other.chunks.len(), 1);
        let owner = other.meta.owner_user_id;
        assert_eq!(
            s.owner_usage(owner).await.expect("usage"),
            OwnerUsage {
                documents: 2,
                bytes: 12 + 2
            }
        );
    }

    /// Migrates `store` (whose database `pool` reaches), seeds it, puts the
    /// old layout back (`blob` the backend's type for bytes) and checks
    /// what migrating again keeps.
    async fn moves_every_snapshot<DB>(store: &dyn Store, pool: &sqlx::Pool<DB>, blob: &str)
    where
        DB: sqlx::Database,
        for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    {
        store.migrate().await.expect("migrate");
        seed(store).await;
        for sql in old_layout(blob) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .expect("old layout");
        }
        store.migrate().await.expect("migrate again");
        check(store).await;
    }

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let store = SqliteStore::connect(&url, ConnectOptions::default())
            .await
            .expect("open");
        moves_every_snapshot(&store, store.pool(), "BLOB").await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(schema) = common::postgres_schema().await else {
            return;
        };
        let store = PostgresStore::connect(&schema.url, ConnectOptions::default())
            .await
            .expect("open");
        moves_every_snapshot(&store, store.pool(), "BYTEA").await;
        store.pool().close().await;
        schema.cleanup().await;
    }
}
