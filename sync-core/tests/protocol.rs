//! The wire protocol: golden bytes from the spec, round trips, hostile input,
//! and the client/server state machines over the in-memory network.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use automerge::{ActorId, Automerge};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::fixtures;
use sync_core::protocol::{
    Access, AccessPolicy, ClientConnection, DocSyncStatus, Granted, ListedDocument, Message,
    PeerMetadata, ProtocolError, ServerConnection, ServerStep, SyncStep,
};
use sync_core::testing::Network;
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};

/// CBOR text string header + bytes, for writing golden frames readably.
fn t(s: &str) -> String {
    assert!(s.len() < 256);
    let head = if s.len() < 24 {
        format!("{:02x}", 0x60 + s.len())
    } else {
        format!("78{:02x}", s.len())
    };
    format!("{head}{}", hex::encode(s))
}

fn doc_id() -> DocumentId {
    "4NMNnkMhL8jXrdJ9jamS58PAVdXu".parse().expect("id")
}

/// The bytes of a `type_name` message (request or sync) from phone-1 to the
/// server about [`doc_id`], `data_hex` the data's byte string, header and all.
fn phone_to_server(type_name: &str, data_hex: &str) -> String {
    format!(
        "a5{}{}{}{}{}{}{}{}{}{data_hex}",
        t("type"),
        t(type_name),
        t("documentId"),
        t(&doc_id().to_string()),
        t("senderId"),
        t("phone-1"),
        t("targetId"),
        t("server"),
        t("data")
    )
}

/// Each message type, and its bytes as the spec's CDDL lays it out (major
/// type 5 map, text keys, text/byte-string/array/uint values).
fn golden() -> Vec<(Message, String)> {
    let id = doc_id().to_string();
    vec![
        (
            Message::Join {
                sender_id: "phone-1".into(),
                supported_protocol_versions: vec!["1".into()],
                metadata: None,
            },
            format!(
                "a3{}{}{}{}{}81{}",
                t("type"),
                t("join"),
                t("senderId"),
                t("phone-1"),
                t("supportedProtocolVersions"),
                t("1")
            ),
        ),
        (
            Message::Peer {
                sender_id: "server".into(),
                target_id: "phone-1".into(),
                selected_protocol_version: "1".into(),
                metadata: Some(PeerMetadata::default()),
            },
            format!(
                "a5{}{}{}{}{}{}{}{}{}a1{}f4",
                t("type"),
                t("peer"),
                t("senderId"),
                t("server"),
                t("selectedProtocolVersion"),
                t("1"),
                t("targetId"),
                t("phone-1"),
                t("peerMetadata"),
                t("isEphemeral")
            ),
        ),
        (
            Message::Leave {
                sender_id: "phone-1".into(),
            },
            format!(
                "a2{}{}{}{}",
                t("type"),
                t("leave"),
                t("senderId"),
                t("phone-1")
            ),
        ),
        (
            Message::Request {
                document_id: doc_id(),
                sender_id: "phone-1".into(),
                target_id: "server".into(),
                data: vec![0x42, 0x00],
            },
            phone_to_server("request", "424200"),
        ),
        (
            Message::Sync {
                document_id: doc_id(),
                sender_id: "phone-1".into(),
                target_id: "server".into(),
                data: vec![0x42, 0x01, 0x02],
            },
            phone_to_server("sync", "43420102"),
        ),
        (
            Message::DocUnavailable {
                document_id: doc_id(),
                sender_id: "server".into(),
                target_id: "phone-1".into(),
            },
            format!(
                "a4{}{}{}{}{}{}{}{}",
                t("type"),
                t("doc-unavailable"),
                t("senderId"),
                t("server"),
                t("targetId"),
                t("phone-1"),
                t("documentId"),
                t(&id)
            ),
        ),
        (
            Message::Ephemeral {
                document_id: doc_id(),
                sender_id: "phone-1".into(),
                target_id: "server".into(),
                count: 300,
                session_id: "s1".into(),
                data: vec![0xa0],
            },
            format!(
                "a7{}{}{}{}{}{}{}19012c{}{}{}{}{}41a0",
                t("type"),
                t("ephemeral"),
                t("senderId"),
                t("phone-1"),
                t("targetId"),
                t("server"),
                t("count"),
                t("sessionId"),
                t("s1"),
                t("documentId"),
                t(&id),
                t("data")
            ),
        ),
        (
            Message::Join {
                sender_id: "phone-1".into(),
                supported_protocol_versions: vec!["1".into()],
                metadata: Some(PeerMetadata {
                    list_documents: true,
                    ..PeerMetadata::default()
                }),
            },
            format!(
                "a4{}{}{}{}{}81{}{}a2{}f4{}f5",
                t("type"),
                t("join"),
                t("senderId"),
                t("phone-1"),
                t("supportedProtocolVersions"),
                t("1"),
                t("peerMetadata"),
                t("isEphemeral"),
                t("documents")
            ),
        ),
        (
            // The listing: each document's 16 bytes, then its heads as
            // byte strings, or null when the server does not know them.
            Message::Peer {
                sender_id: "server".into(),
                target_id: "phone-1".into(),
                selected_protocol_version: "1".into(),
                metadata: Some(PeerMetadata {
                    documents: Some(vec![
                        ListedDocument {
                            id: DocumentId::from_bytes([1; 16]),
                            heads: Some(vec![ChangeHash([2; 32])]),
                        },
                        ListedDocument {
                            id: DocumentId::from_bytes([3; 16]),
                            heads: None,
                        },
                    ]),
                    ..PeerMetadata::default()
                }),
            },
            format!(
                "a5{}{}{}{}{}{}{}{}{}a2{}f4{}828250{}815820{}8250{}f6",
                t("type"),
                t("peer"),
                t("senderId"),
                t("server"),
                t("selectedProtocolVersion"),
                t("1"),
                t("targetId"),
                t("phone-1"),
                t("peerMetadata"),
                t("isEphemeral"),
                t("documents"),
                "01".repeat(16),
                "02".repeat(32),
                "03".repeat(16)
            ),
        ),
        (
            Message::Error {
                message: "bad".into(),
            },
            format!("a2{}{}{}{}", t("type"), t("error"), t("message"), t("bad")),
        ),
    ]
}

#[test]
fn golden_bytes_for_every_message_type() {
    for (message, hex_bytes) in golden() {
        let bytes = hex::decode(&hex_bytes).expect("hex");
        assert_eq!(
            hex::encode(message.encode()),
            hex_bytes,
            "{}",
            message.type_name()
        );
        assert_eq!(Message::decode(&bytes), Ok(message));
    }
}

#[test]
fn decodes_other_key_orders_spec_metadata_and_unknown_fields() {
    // As a JavaScript client may send it: keys in another order, the
    // README's `metadata` spelling, and a field we do not know.
    let bytes = hex::decode(format!(
        "a5{}{}{}a2{}{}{}f5{}{}{}81{}{}{}",
        t("senderId"),
        t("js-peer"),
        t("metadata"),
        t("storageId"),
        t("abc"),
        t("isEphemeral"),
        t("type"),
        t("join"),
        t("supportedProtocolVersions"),
        t("1"),
        t("futureField"),
        t("x")
    ))
    .expect("hex");
    assert_eq!(
        Message::decode(&bytes),
        Ok(Message::Join {
            sender_id: "js-peer".into(),
            supported_protocol_versions: vec!["1".into()],
            metadata: Some(PeerMetadata {
                storage_id: Some("abc".into()),
                is_ephemeral: true,
                ..PeerMetadata::default()
            }),
        })
    );
    // Types we do not act on decode as `Other`.
    let bytes = hex::decode(format!("a1{}{}", t("type"), t("remote-heads-changed"))).expect("hex");
    assert_eq!(
        Message::decode(&bytes),
        Ok(Message::Other {
            type_name: "remote-heads-changed".into()
        })
    );
}

#[test]
fn malformed_frames_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty"),
        (vec![0x82, 0x01, 0x02], "array"),
        (
            hex::decode(format!("a1{}{}", t("type"), t("sync"))).expect("hex"),
            "sync without fields",
        ),
        (
            hex::decode(format!(
                "a2{}{}{}{}",
                t("type"),
                t("join"),
                t("type"),
                t("join")
            ))
            .expect("hex"),
            "duplicate key",
        ),
        (
            hex::decode(format!("a1{}01", t("type"))).expect("hex"),
            "type not a string",
        ),
        (hex::decode("a1").expect("hex"), "truncated"),
        (
            [
                Message::Leave {
                    sender_id: "x".into(),
                }
                .encode(),
                vec![0],
            ]
            .concat(),
            "trailing bytes",
        ),
    ];
    for (bytes, what) in cases {
        assert!(
            matches!(Message::decode(&bytes), Err(ProtocolError::Malformed(_))),
            "{what}"
        );
    }
    let bad_id = hex::decode(format!(
        "a4{}{}{}{}{}{}{}{}",
        t("type"),
        t("doc-unavailable"),
        t("senderId"),
        t("a"),
        t("targetId"),
        t("b"),
        t("documentId"),
        t("not-an-id")
    ))
    .expect("hex");
    assert!(matches!(
        Message::decode(&bad_id),
        Err(ProtocolError::DocumentId(_))
    ));
    assert!(matches!(
        Message::decode_with_limit(&[0; 100], 10),
        Err(ProtocolError::TooLarge {
            size: 100,
            limit: 10
        })
    ));
}

fn arb_message() -> impl Strategy<Value = Message> {
    let s = "[a-z0-9-]{0,12}";
    let id = any::<[u8; 16]>().prop_map(DocumentId::from_bytes);
    let data = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (
            s,
            proptest::collection::vec("[0-9]{1,2}", 0..3),
            proptest::option::of((proptest::option::of(s), any::<bool>(), any::<bool>()))
        )
            .prop_map(|(sender_id, v, md)| Message::Join {
                sender_id,
                supported_protocol_versions: v,
                metadata: md.map(|(storage_id, is_ephemeral, list_documents)| PeerMetadata {
                    storage_id,
                    is_ephemeral,
                    list_documents,
                    documents: None,
                }),
            }),
        (
            s,
            s,
            "[0-9]",
            any::<bool>(),
            proptest::option::of(proptest::collection::vec(
                (
                    id.clone(),
                    proptest::option::of(proptest::collection::btree_set(any::<[u8; 32]>(), 0..4))
                ),
                0..4
            ))
        )
            .prop_map(|(a, b, v, e, listed)| Message::Peer {
                sender_id: a,
                target_id: b,
                selected_protocol_version: v,
                metadata: (e || listed.is_some()).then(|| PeerMetadata {
                    documents: listed.map(|l| {
                        l.into_iter()
                            .map(|(id, heads)| ListedDocument {
                                id,
                                heads: heads.map(|h| h.into_iter().map(ChangeHash).collect()),
                            })
                            .collect()
                    }),
                    ..PeerMetadata::default()
                }),
            }),
        s.prop_map(|sender_id| Message::Leave { sender_id }),
        (id.clone(), s, s, data.clone()).prop_map(|(document_id, sender_id, target_id, data)| {
            Message::Request {
                document_id,
                sender_id,
                target_id,
                data,
            }
        }),
        (id.clone(), s, s, data.clone()).prop_map(|(document_id, sender_id, target_id, data)| {
            Message::Sync {
                document_id,
                sender_id,
                target_id,
                data,
            }
        }),
        (id.clone(), s, s).prop_map(|(document_id, sender_id, target_id)| {
            Message::DocUnavailable {
                document_id,
                sender_id,
                target_id,
            }
        }),
        (id, s, s, any::<u64>(), s, data).prop_map(
            |(document_id, sender_id, target_id, count, session_id, data)| {
                // The fields in the order the spec puts them on the wire.
                Message::Ephemeral {
                    sender_id,
                    target_id,
                    count,
                    session_id,
                    document_id,
                    data,
                }
            }
        ),
        ".{0,40}".prop_map(|message| Message::Error { message }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(m in arb_message()) {
        prop_assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
        let mut server = ServerConnection::new("s");
        if let Ok(m) = Message::decode(&bytes) {
            let _ = server.handle_with(m, &|_: &DocumentId| Access::ReadWrite);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(m in arb_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = m.encode();
        for (at, b) in flips {
            let len = bytes.len();
            if len > 0 { bytes[at % len] = b; }
        }
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn garbage_sync_payloads_are_errors_not_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut server = joined_server();
        let m = Message::Sync { document_id: doc_id(), sender_id: "c".into(), target_id: "s".into(), data };
        if let Ok(ServerStep::Sync(SyncStep { document_id, message, .. })) = server.handle_with(m, &|_: &DocumentId| Access::ReadWrite) {
            let mut doc = Automerge::new();
            let _ = server.apply(&document_id, &mut doc, *message);
        }
    }
}

const NOW: Timestamp = Timestamp(1_795_400_000_000);

fn diary_with_visits(n: usize, seed: u64) -> (DocumentId, DiaryDocument) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let e = Edit::new("cadre01", NOW);
    let mut d =
        DiaryDocument::create("cadre01", 2026, ActorId::from([1u8; 16]), &e).expect("create");
    for i in 0..n {
        let at = Timestamp(NOW.0 + i as i64 * 60_000);
        d.add_visit(
            &Edit::new("cadre01", at),
            &fixtures::visit(&mut r, at, "cadre01"),
        )
        .expect("visit");
    }
    (DocumentId::from_bytes([seed as u8; 16]), d)
}

#[test]
fn handshake_must_come_first_and_versions_must_match() {
    let mut server = ServerConnection::new("s");
    let sync = Message::Sync {
        document_id: doc_id(),
        sender_id: "c".into(),
        target_id: "s".into(),
        data: vec![],
    };
    let allow = |_: &DocumentId| Access::ReadWrite;
    assert!(matches!(
        server.handle_with(sync, &allow),
        Err(ProtocolError::Unexpected { .. })
    ));
    let join = Message::Join {
        sender_id: "c".into(),
        supported_protocol_versions: vec!["2".into()],
        metadata: None,
    };
    assert!(matches!(
        ServerConnection::new("s").handle_with(join, &allow),
        Err(ProtocolError::Version { .. })
    ));

    let (mut client, _join) = ClientConnection::new("c", None);
    let mut docs = BTreeMap::new();
    let early = Message::DocUnavailable {
        document_id: doc_id(),
        sender_id: "s".into(),
        target_id: "c".into(),
    };
    assert!(matches!(
        client.handle(early, &mut docs),
        Err(ProtocolError::Unexpected { .. })
    ));
}

#[test]
fn many_documents_sync_over_one_connection() {
    let mut net = Network::new(1);
    let phone = net.add_client("phone", |_| Access::ReadWrite);
    for seed in 1..=5 {
        let (id, d) = diary_with_visits(3, seed);
        net.clients[phone].docs.insert(id, d.into_automerge());
    }
    net.connect(phone);
    let stats = net.run_until_quiescent(100).expect("quiescent");
    assert!(net.client_is_synced(phone));
    assert_eq!(net.server.docs.len(), 5);
    for (id, doc) in &net.clients[phone].docs {
        assert_eq!(net.server.docs[id].get_heads(), doc.get_heads());
    }
    assert_eq!(stats.stores, 5, "each document stored once");
}

#[test]
fn a_denied_document_answers_exactly_like_a_missing_one() {
    let (id, d) = diary_with_visits(2, 3);
    let missing = DocumentId::from_bytes([99; 16]);
    let mut net = Network::new(2);
    let owner = net.add_client("owner", |_| Access::ReadWrite);
    let other = net.add_client("other", move |d| {
        if *d == id {
            Access::None
        } else {
            Access::ReadWrite
        }
    });
    net.clients[owner].docs.insert(id, d.into_automerge());
    net.connect(owner);
    net.run_until_quiescent(100).expect("quiescent");

    // The other cadre asks for the owner's document and for one nobody has.
    net.clients[other].wanted.extend([id, missing]);
    net.connect(other);
    net.run_until_quiescent(100).expect("quiescent");
    assert!(net.client_is_synced(other), "both answered");
    assert!(
        net.clients[other]
            .docs
            .get(&id)
            .is_none_or(|d| d.get_heads().is_empty())
    );

    // Byte for byte the same answer, but for the id.
    let allow_none = |_: &DocumentId| Access::None;
    let allow_all = |_: &DocumentId| Access::ReadWrite;
    let mut answers = Vec::new();
    for (doc, policy) in [
        (id, &allow_none as &dyn Fn(&DocumentId) -> Access),
        (missing, &allow_all),
    ] {
        let mut s = ServerConnection::new("s");
        s.handle_with(
            Message::Join {
                sender_id: "c".into(),
                supported_protocol_versions: vec!["1".into()],
                metadata: None,
            },
            &policy,
        )
        .expect("join");
        let empty = Automerge::new();
        let (mut c, _) = ClientConnection::new("c", None);
        c.add_document(doc);
        let req = Message::Request {
            document_id: doc,
            sender_id: "c".into(),
            target_id: "s".into(),
            data: {
                use automerge::sync::SyncDoc;
                empty
                    .generate_sync_message(&mut automerge::sync::State::new())
                    .expect("msg")
                    .encode()
            },
        };
        let reply = match s.handle_with(req, &policy).expect("handled") {
            ServerStep::Reply(r) => r,
            ServerStep::Sync(SyncStep {
                document_id,
                message,
                is_request,
                ..
            }) => {
                let mut server_doc = Automerge::new();
                s.apply(&document_id, &mut server_doc, *message)
                    .expect("apply");
                s.reply(&document_id, &server_doc, is_request)
                    .message
                    .into_iter()
                    .collect()
            }
            ServerStep::Close => vec![],
            ServerStep::Decide { .. } | ServerStep::List => unreachable!("the policy answered"),
        };
        answers.push(
            reply
                .into_iter()
                .map(|m| match m {
                    Message::DocUnavailable {
                        sender_id,
                        target_id,
                        ..
                    } => format!("unavailable {sender_id}->{target_id}"),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], vec!["unavailable s->c".to_owned()]);
}

#[test]
fn a_read_only_peer_receives_but_cannot_write() {
    let (id, d) = diary_with_visits(2, 4);
    let mut net = Network::new(3);
    let cadre = net.add_client("cadre", |_| Access::ReadWrite);
    let supervisor = net.add_client("supervisor", |_| Access::Read);
    net.clients[cadre].docs.insert(id, d.automerge().clone());
    net.connect(cadre);
    net.run_until_quiescent(100).expect("quiescent");

    net.clients[supervisor].wanted.insert(id);
    net.connect(supervisor);
    net.run_until_quiescent(100).expect("quiescent");
    let copy = net.clients[supervisor].docs[&id].clone();
    assert_eq!(
        copy.get_heads(),
        net.server.docs[&id].get_heads(),
        "supervisor reads the diary"
    );

    // The supervisor edits its copy and syncs: the server does not take it.
    let mut edited =
        DiaryDocument::from_automerge(copy.with_actor(ActorId::from([7u8; 16]))).expect("open");
    let mut r = ChaCha8Rng::seed_from_u64(5);
    edited
        .add_visit(&Edit::new("sup", NOW), &fixtures::visit(&mut r, NOW, "sup"))
        .expect("edit");
    net.clients[supervisor]
        .docs
        .insert(id, edited.into_automerge());
    let before = net.server.docs[&id].get_heads();
    net.connect(supervisor);
    let _ = net.run_until_quiescent(100);
    assert_eq!(
        net.server.docs[&id].get_heads(),
        before,
        "read-only changes not applied"
    );
}

#[test]
fn a_malformed_frame_closes_only_that_connection() {
    let (id_a, a) = diary_with_visits(1, 5);
    let (id_b, b) = diary_with_visits(1, 6);
    let mut net = Network::new(4);
    let good = net.add_client("good", |_| Access::ReadWrite);
    let bad = net.add_client("bad", |_| Access::ReadWrite);
    net.clients[good].docs.insert(id_a, a.into_automerge());
    net.clients[bad].docs.insert(id_b, b.into_automerge());
    net.connect(good);
    net.connect(bad);
    net.step();
    net.inject(bad, vec![0xff, 0x00, 0x13]);
    net.run_until_quiescent(100).expect("quiescent");
    assert_eq!(net.server.errors.len(), 1);
    assert!(matches!(net.server.errors[0], ProtocolError::Malformed(_)));
    assert!(net.client_is_synced(good));
    assert_eq!(
        net.server.docs[&id_a].get_heads(),
        net.clients[good].docs[&id_a].get_heads()
    );
}

/// A diary the server has none of goes up as one document chunk (automerge's
/// v2 sync message, which the server advertises): about its saved size on
/// the wire and in storage, where one change at a time took about ten times
/// that. The server's payload checks take it.
/// What crossed one connection in [`converse`].
struct Conversation {
    /// Bytes the client sent, the first messages included.
    up: usize,
    /// Bytes of chunks the server stored.
    stored: usize,
    /// Rounds in which the client sent something after its first messages
    /// (0: the server's answer to them was the end).
    more_rounds: usize,
}

/// Runs a connection until the client has nothing more to say: `to_server`
/// (the client's first messages) go to `server`, which checks and applies
/// every sync message to `stored` and answers; the client handles the
/// answers and polls again. `restore` is the server's sync state kept from
/// an earlier connection, restored as the server does before a merge.
fn converse(
    server: &mut ServerConnection,
    stored: &mut Automerge,
    client: &mut ClientConnection,
    docs: &mut BTreeMap<DocumentId, Automerge>,
    mut to_server: Vec<Message>,
    restore: Option<&[u8]>,
) -> Conversation {
    let limits = sync_core::protocol::payload::PayloadLimits::new(16 * 1024 * 1024, 32);
    let allow = |_: &DocumentId| Access::ReadWrite;
    let mut talk = Conversation {
        up: to_server.iter().map(|m| m.encode().len()).sum(),
        stored: 0,
        more_rounds: 0,
    };
    let mut restored = false;
    for round in 0..10 {
        let mut to_client = Vec::new();
        for m in to_server.drain(..) {
            match server.handle_with(m, &allow).expect("handled") {
                ServerStep::Reply(replies) => to_client.extend(replies),
                ServerStep::Close => unreachable!("the client stays"),
                ServerStep::Decide { .. } | ServerStep::List => {
                    unreachable!("the policy answered")
                }
                ServerStep::Sync(SyncStep {
                    document_id,
                    message,
                    ..
                }) => {
                    if let Some(saved) = restore.filter(|_| !restored) {
                        server.restore_sync_state(&document_id, saved);
                        restored = true;
                    }
                    sync_core::protocol::payload::check(stored, &message, &limits)
                        .expect("the payload passes the checks");
                    let applied = server
                        .apply(&document_id, stored, *message)
                        .expect("applied");
                    if let Some(chunk) = applied.chunk(stored) {
                        talk.stored += chunk.len();
                    }
                    to_client.extend(server.reply(&document_id, stored, false).message);
                }
            }
        }
        for m in to_client {
            client.handle(m, docs).expect("client handles");
        }
        to_server = client.poll(docs);
        if to_server.is_empty() {
            return talk;
        }
        talk.up += to_server.iter().map(|m| m.encode().len()).sum::<usize>();
        if round > 0 {
            talk.more_rounds += 1;
        }
    }
    panic!("the connection did not settle in 10 rounds");
}

/// A client's first connection for document `id`, which the server stores
/// in `stored`: the two connections, to read their sync states, and what
/// crossed.
fn first_sync(
    id: DocumentId,
    docs: &mut BTreeMap<DocumentId, Automerge>,
    stored: &mut Automerge,
) -> (ServerConnection, ClientConnection, Conversation) {
    let mut server = ServerConnection::new("s");
    let (mut client, join) = ClientConnection::new("c", None);
    client.add_document(id);
    let talk = converse(&mut server, stored, &mut client, docs, vec![join], None);
    (server, client, talk)
}

#[test]
fn a_first_upload_costs_about_the_saved_size() {
    let mut r = ChaCha8Rng::seed_from_u64(42);
    let diary =
        fixtures::diary(&mut r, "cadre01", ActorId::from([7u8; 16]), 300, NOW).into_automerge();
    let saved = diary.save().len();
    let id = DocumentId::from_bytes([42; 16]);

    let mut docs = BTreeMap::from([(id, diary.clone())]);
    let mut stored = Automerge::new();
    let (_, _, talk) = first_sync(id, &mut docs, &mut stored);
    assert_eq!(
        stored.get_heads(),
        diary.get_heads(),
        "the server has it all"
    );
    let (up, stored_bytes) = (talk.up, talk.stored);
    eprintln!("first upload: {up} bytes up, {stored_bytes} stored, save() {saved}");
    assert!(
        up * 10 <= saved * 11,
        "{up} bytes on the wire for a document of {saved}"
    );
    assert!(
        stored_bytes * 10 <= saved * 11,
        "{stored_bytes} bytes stored for a document of {saved}"
    );
}

/// A phone that kept its sync state from its last connection and made a
/// visit offline sends the visit in its first sync message: the server's
/// answer to it is the end of the sync, one round trip after the handshake.
#[test]
fn a_kept_sync_state_sends_new_changes_in_the_first_message() {
    let (id, diary) = diary_with_visits(20, 3);
    let mut docs = BTreeMap::from([(id, diary.into_automerge())]);
    let mut stored = Automerge::new();
    // The first connection: the whole diary; both sides keep their state.
    let (server, client, _) = first_sync(id, &mut docs, &mut stored);
    let kept_by_phone = client.sync_state(&id).expect("phone state");
    let kept_by_server = server.sync_state(&id).expect("server state");

    // Offline: one more visit.
    let phone = docs.get_mut(&id).expect("diary");
    let mut diary = DiaryDocument::from_automerge(phone.clone()).expect("diary");
    let at = Timestamp(NOW.0 + 86_400_000);
    let mut r = ChaCha8Rng::seed_from_u64(4);
    diary
        .add_visit(
            &Edit::new("cadre01", at),
            &fixtures::visit(&mut r, at, "cadre01"),
        )
        .expect("visit");
    *phone = diary.into_automerge();
    let visit = phone.get_last_local_change().expect("the visit").hash();

    // The next connection: the join is answered (the handshake), then the
    // first sync message carries the visit.
    let mut server = ServerConnection::new("s");
    let (mut client, join) = ClientConnection::new("c", None);
    client.add_document_with_state(id, &kept_by_phone);
    let allow = |_: &DocumentId| Access::ReadWrite;
    let ServerStep::Reply(peer) = server.handle_with(join, &allow).expect("join") else {
        panic!("the join is answered");
    };
    for m in peer {
        client.handle(m, &mut docs).expect("peer");
    }
    let first = client.poll(&docs);
    let [Message::Sync { data, .. }] = first.as_slice() else {
        panic!("one sync message, got {first:?}");
    };
    let carried = automerge::sync::Message::decode(data).expect("sync message");
    assert_eq!(carried.changes.len(), 1, "the visit, and nothing else");
    let talk = converse(
        &mut server,
        &mut stored,
        &mut client,
        &mut docs,
        first,
        Some(&kept_by_server),
    );
    assert!(
        stored.get_change_meta_by_hash(&visit).is_some(),
        "the server has the visit"
    );
    assert_eq!(stored.get_heads(), docs[&id].get_heads());
    assert_eq!(client.status(&id, &docs), Some(DocSyncStatus::Synced));
    assert_eq!(
        talk.more_rounds, 0,
        "synced by the answer to the first message"
    );
}

/// A server whose user owns the listed documents.
struct Owner(Vec<ListedDocument>);

impl AccessPolicy for Owner {
    fn access(&self, document: &DocumentId) -> Access {
        if self.0.iter().any(|d| d.id == *document) {
            Access::ReadWrite
        } else {
            Access::None
        }
    }
    fn documents(&self) -> Vec<ListedDocument> {
        self.0.clone()
    }
}

fn sorted_heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

/// A phone that asks for the listing sends nothing for a document whose
/// listed heads are its own, exactly the changes made since them for one
/// it changed (with no sync state kept), asks for one it lacks, and syncs
/// as usual one the server is ahead on, one with unknown heads and one
/// the server does not have.
#[test]
fn the_listing_in_the_handshake_leaves_out_documents_with_the_same_heads() {
    use automerge::transaction::Transactable;
    let id = |n: u8| DocumentId::from_bytes([n; 16]);
    let (same, _) = counter_changes(1, 3);
    let (mut changed, _) = counter_changes(2, 3);
    let on_server_changed = changed.clone();
    let mut tx = changed.transaction();
    tx.put(automerge::ROOT, "offline", 1).expect("put");
    tx.commit();
    let (missing, _) = counter_changes(3, 2);
    let (behind, _) = counter_changes(4, 2);
    let (mut ahead, _) = counter_changes(4, 2);
    let mut tx = ahead.transaction();
    tx.put(automerge::ROOT, "supervised", 1).expect("put");
    tx.commit();
    let (unknown, _) = counter_changes(5, 2);
    let (new, _) = counter_changes(6, 2);
    let listed = |n: u8, doc: &Automerge| ListedDocument {
        id: id(n),
        heads: Some(sorted_heads(doc)),
    };
    let owner = Owner(vec![
        listed(1, &same),
        listed(2, &on_server_changed),
        listed(3, &missing),
        listed(4, &ahead),
        ListedDocument {
            id: id(5),
            heads: None,
        },
    ]);
    let mut docs = BTreeMap::from([
        (id(1), same),
        (id(2), changed.clone()),
        (id(4), behind),
        (id(5), unknown),
        (id(6), new),
    ]);

    let mut server = ServerConnection::new("s");
    let (mut client, join) = ClientConnection::listing("c");
    for id in docs.keys() {
        client.add_document(*id);
    }
    let ServerStep::Reply(peer) = server.handle_with(join, &owner).expect("join") else {
        panic!("the join is answered with the listing");
    };
    for m in peer {
        client.handle(m, &mut docs).expect("peer");
    }
    assert_eq!(client.status(&id(1), &docs), Some(DocSyncStatus::Synced));
    let sent: BTreeMap<DocumentId, Message> = client
        .poll(&docs)
        .into_iter()
        .map(|m| (*m.document_id().expect("about a document"), m))
        .collect();
    assert_eq!(
        sent.keys().copied().collect::<Vec<_>>(),
        vec![id(2), id(3), id(4), id(5), id(6)],
        "nothing for the document both have"
    );
    let Message::Sync { data, .. } = &sent[&id(2)] else {
        panic!("a sync for the changed document");
    };
    let carried = automerge::sync::Message::decode(data).expect("sync message");
    assert_eq!(
        carried.changes.len(),
        1,
        "the offline change, and nothing the server listed"
    );
    assert!(
        matches!(sent[&id(3)], Message::Request { .. }),
        "the document only the server has is requested"
    );
    assert!(!client.is_quiescent(&docs));
    assert_eq!(client.status(&id(1), &docs), Some(DocSyncStatus::Synced));
}

/// `n` changes of one actor, each setting `v` at the root, as a phone made
/// them (raw change chunks), and the phone's document.
fn counter_changes(actor: u8, n: i64) -> (Automerge, Vec<Vec<u8>>) {
    use automerge::transaction::Transactable;
    let mut phone = Automerge::new().with_actor(ActorId::from([actor; 16]));
    let mut changes = Vec::new();
    for v in 0..n {
        let mut tx = phone.transaction();
        tx.put(automerge::ROOT, "v", v).expect("put");
        tx.commit();
        changes.push(
            phone
                .get_last_local_change()
                .expect("change")
                .raw_bytes()
                .to_vec(),
        );
    }
    (phone, changes)
}

/// A server connection past the handshake, every document read-write.
fn joined_server() -> ServerConnection {
    sync_core::testing::joined_server("s", "c")
}

/// Hands `server` a sync message for [`doc_id`] carrying `entries`, and
/// applies it to `doc`.
fn apply_entries(
    server: &mut ServerConnection,
    doc: &mut Automerge,
    entries: Vec<Vec<u8>>,
    version: automerge::sync::MessageVersion,
) -> sync_core::protocol::SyncApplied {
    let data = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: entries.into(),
        flags: None,
        version,
    }
    .encode();
    let sync = Message::Sync {
        document_id: doc_id(),
        sender_id: "c".into(),
        target_id: "s".into(),
        data,
    };
    let Ok(ServerStep::Sync(SyncStep { message, .. })) =
        server.handle_with(sync, &|_: &DocumentId| Access::ReadWrite)
    else {
        panic!("a sync step");
    };
    server.apply(&doc_id(), doc, *message).expect("applied")
}

/// A v2 sync message puts all its changes in one entry. Those that wait for
/// a dependency are still told apart from those applied, one by one, so
/// only they are stored again after the applied ones.
#[test]
fn a_waiting_change_inside_a_v2_entry_is_kept_alone() {
    use automerge::ReadDoc;
    use automerge::sync::MessageVersion;

    let (phone, changes) = counter_changes(5, 3);
    // The first and the third, without the second they depend on.
    let mut entry = changes[0].clone();
    entry.extend_from_slice(&changes[2]);
    let mut server = joined_server();
    let mut doc = Automerge::new();
    let applied = apply_entries(&mut server, &mut doc, vec![entry], MessageVersion::V2);
    assert_eq!(applied.changes_added, 1);
    assert_eq!(
        applied.waiting,
        vec![changes[2].clone()],
        "only the third waits"
    );
    let stored = sync_core::storage::load(None, [applied.chunk(&doc).expect("chunk").as_slice()])
        .expect("loads");
    assert!(sync_core::storage::has_waiting_changes(&stored));
    let mut stored = stored;
    stored
        .load_incremental(&changes[1])
        .expect("the missing one");
    assert_eq!(stored.get_heads(), phone.get_heads());
    assert_eq!(
        stored
            .get(automerge::ROOT, "v")
            .expect("get")
            .map(|(v, _)| v.as_i64()),
        Some(Some(2))
    );
}

/// A sync message of change chunks that the document lacked hands back
/// those changes as it carried them (`SyncApplied::added`), and they are
/// what gets stored; a message carrying a change the document had, or one
/// whose changes wait, leaves the document to say what was added.
#[test]
fn the_changes_a_message_added_come_from_its_own_bytes() {
    let (phone, changes) = counter_changes(6, 4);
    let mut server = joined_server();
    let mut doc = Automerge::new();
    let apply = |server: &mut ServerConnection, doc: &mut Automerge, carried: Vec<Vec<u8>>| {
        apply_entries(server, doc, carried, automerge::sync::MessageVersion::V1)
    };

    // Onto an empty document: the stored chunk is the compacted document.
    let first = apply(&mut server, &mut doc, vec![changes[0].clone()]);
    assert_eq!(first.added, Some(vec![changes[0].clone()]));
    // The next two, new: they are the added changes and the stored chunk.
    let next = apply(
        &mut server,
        &mut doc,
        vec![changes[1].clone(), changes[2].clone()],
    );
    assert_eq!(next.changes_added, 2);
    assert_eq!(
        next.added,
        Some(vec![changes[1].clone(), changes[2].clone()])
    );
    assert_eq!(
        next.chunk(&doc),
        Some([changes[1].clone(), changes[2].clone()].concat())
    );
    // One the document had and one it lacked: the document says.
    let mixed = apply(
        &mut server,
        &mut doc,
        vec![changes[2].clone(), changes[3].clone()],
    );
    assert_eq!(mixed.changes_added, 1);
    assert_eq!(mixed.added, None);
    assert_eq!(mixed.chunk(&doc), Some(doc.save_after(&mixed.heads_before)));
    assert_eq!(doc.get_heads(), phone.get_heads());
}

fn request_for(document_id: DocumentId) -> Message {
    use automerge::sync::SyncDoc;
    Message::Request {
        document_id,
        sender_id: "c".into(),
        target_id: "s".into(),
        data: Automerge::new()
            .generate_sync_message(&mut automerge::sync::State::new())
            .expect("a first message")
            .encode(),
    }
}

#[test]
fn access_is_a_step_the_caller_answers_once_per_document() {
    let (a, b) = (
        DocumentId::from_bytes([1; 16]),
        DocumentId::from_bytes([2; 16]),
    );
    let mut server = joined_server();

    // The connection asks, and holds the message until it hears back.
    let ServerStep::Decide { document_id } = server.handle(request_for(a)).expect("handled") else {
        panic!("a new document is decided by the caller first");
    };
    assert_eq!(document_id, a);
    assert!(
        matches!(
            server.handle(request_for(b)),
            Err(ProtocolError::Unexpected { .. })
        ),
        "nothing else is handled before the answer"
    );
    assert!(
        matches!(
            server.grant(&b, Access::ReadWrite),
            Err(ProtocolError::Unexpected { .. })
        ),
        "only the waiting message's document can be granted"
    );
    let Granted::Sync(SyncStep {
        document_id,
        access,
        is_request,
        ..
    }) = server.grant(&a, Access::ReadWrite).expect("granted")
    else {
        panic!("a granted document is synced");
    };
    assert_eq!(
        (document_id, access, is_request),
        (a, Access::ReadWrite, true)
    );

    // Decided once: the next message about it goes straight to the sync.
    assert!(matches!(
        server.handle(request_for(a)).expect("handled"),
        ServerStep::Sync(SyncStep { .. })
    ));

    // A denial is answered by the connection, as a missing document.
    assert!(matches!(
        server.handle(request_for(b)).expect("handled"),
        ServerStep::Decide { .. }
    ));
    let Granted::Unavailable(reply) = server.grant(&b, Access::None).expect("answered") else {
        panic!("a denied document is answered, not synced");
    };
    assert!(
        matches!(&reply, Message::DocUnavailable { document_id, .. } if *document_id == b),
        "{reply:?}"
    );
    assert_eq!(
        server.documents().map(|(d, _)| *d).collect::<Vec<_>>(),
        vec![a],
        "a denied document is not synced"
    );
}

#[test]
fn a_connection_names_at_most_its_limit_of_documents() {
    let ids: Vec<DocumentId> = (1..=3).map(|i| DocumentId::from_bytes([i; 16])).collect();
    let mut server = joined_server().with_document_limit(2);
    let allow = |_: &DocumentId| Access::ReadWrite;
    for id in &ids[..2] {
        assert!(matches!(
            server.handle_with(request_for(*id), &allow),
            Ok(ServerStep::Sync(SyncStep { .. }))
        ));
    }
    // Forgotten (the caller refused what it sent): asking again is not a
    // new document.
    server.forget(&ids[0]);
    assert!(matches!(
        server.handle_with(request_for(ids[0]), &allow),
        Ok(ServerStep::Sync(SyncStep { .. }))
    ));
    let err = server
        .handle_with(request_for(ids[2]), &allow)
        .expect_err("one more than the limit");
    assert!(
        matches!(&err, ProtocolError::Refused(why) if why.contains("more than 2 documents")),
        "{err}"
    );
}
