//! The local store without a server: a damaged file is reported, never
//! emptied; nothing is recorded before a login names the owner.

use mobile_ffi::records::visit::{NewVisit, SixAnswers, SubjectKind, VisitKind};
use mobile_ffi::{ClientConfig, ClientError, DiaryClient};

fn config(dir: &std::path::Path) -> ClientConfig {
    ClientConfig {
        data_dir: dir.to_string_lossy().into_owned(),
        // Nothing listens here; these tests never go online.
        server_url: "http://127.0.0.1:9".to_owned(),
        device_id: "test-phone".to_owned(),
        at_rest_key: None,
    }
}

#[test]
fn a_corrupt_store_is_a_typed_error_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("diary.sqlite3");
    let garbage = b"these are not the pages of a SQLite database, but a cadre's week".repeat(200);
    std::fs::write(&file, &garbage).expect("write");
    match DiaryClient::open(config(dir.path())) {
        Err(ClientError::CorruptStore { .. }) => {}
        other => panic!("expected CorruptStore, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&file).expect("read"),
        garbage,
        "file untouched"
    );
}

#[test]
fn a_new_store_opens_twice_and_needs_a_login_to_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = DiaryClient::open(config(dir.path())).expect("open");
    assert!(matches!(client.me(), Err(ClientError::NotLoggedIn)));
    let visit = NewVisit {
        kind: VisitKind::HomeVisit,
        at_ms: 1_780_000_000_000,
        place: "柳树村三组".to_owned(),
        subject_kind: SubjectKind::Household,
        subject_name: "王秀英".to_owned(),
        subject_address: None,
        tags: vec![],
        participants: vec![],
        answers: SixAnswers::default(),
        notes: String::new(),
        latitude: None,
        longitude: None,
        aid_money_fen: 0,
        aid_goods: String::new(),
        resolved_on_spot: vec![],
    };
    assert!(matches!(
        client.add_visit(visit),
        Err(ClientError::NotLoggedIn)
    ));
    drop(client);
    let again = DiaryClient::open(config(dir.path())).expect("reopen");
    let status = again.sync_status().expect("status");
    assert_eq!(status.pending_changes, 0);
    assert!(status.last_success_ms.is_none());
}

#[test]
fn https_needs_the_tls_feature_and_other_schemes_are_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.server_url = "https://diary.example.org".to_owned();
    let https = DiaryClient::open(c.clone());
    if cfg!(feature = "tls") {
        https.expect("https is supported with the tls feature");
    } else {
        assert!(matches!(https, Err(ClientError::Config { .. })));
    }
    c.server_url = "ftp://example.org".to_owned();
    assert!(matches!(
        DiaryClient::open(c),
        Err(ClientError::Config { .. })
    ));
}

/// 32 bytes as the app would keep them in the Keystore or Keychain.
const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER_KEY: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

fn keyed(dir: &std::path::Path, key: Option<&str>) -> ClientConfig {
    ClientConfig {
        at_rest_key: key.map(str::to_owned),
        ..config(dir)
    }
}

#[test]
fn an_at_rest_key_that_is_not_64_hex_digits_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    match DiaryClient::open(keyed(dir.path(), Some("correct horse battery staple"))) {
        Err(ClientError::Invalid { field, .. }) => assert_eq!(field, "at_rest_key"),
        other => panic!("expected Invalid(at_rest_key), got {other:?}"),
    }
}

#[cfg(not(feature = "encryption"))]
#[test]
fn a_build_without_encryption_refuses_a_key_rather_than_store_in_the_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        DiaryClient::open(keyed(dir.path(), Some(KEY))),
        Err(ClientError::Config { .. })
    ));
    assert!(
        !dir.path().join("diary.sqlite3").exists(),
        "nothing written"
    );
}

#[cfg(feature = "encryption")]
#[test]
fn a_keyed_store_is_encrypted_and_opens_only_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(DiaryClient::open(keyed(dir.path(), Some(KEY))).expect("create"));
    let file = std::fs::read(dir.path().join("diary.sqlite3")).expect("read");
    assert!(!file.starts_with(b"SQLite format 3"), "no plain header");
    assert!(
        !file.windows(8).any(|w| w == b"settings"),
        "table names are not readable"
    );

    drop(DiaryClient::open(keyed(dir.path(), Some(KEY))).expect("reopen with the key"));
    for (key, expected) in [(Some(OTHER_KEY), "WrongKey"), (None, "CorruptStore")] {
        let got = DiaryClient::open(keyed(dir.path(), key)).map(|_| ());
        assert!(
            format!("{got:?}").contains(expected),
            "key {key:?}: expected {expected}, got {got:?}"
        );
    }
    drop(DiaryClient::open(keyed(dir.path(), Some(KEY))).expect("still opens with the key"));
}

#[cfg(feature = "encryption")]
#[test]
fn a_key_given_for_a_plain_store_is_a_wrong_key_and_the_store_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(DiaryClient::open(config(dir.path())).expect("create plain"));
    match DiaryClient::open(keyed(dir.path(), Some(KEY))) {
        Err(ClientError::WrongKey { detail }) => assert!(detail.contains("without"), "{detail}"),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    drop(DiaryClient::open(config(dir.path())).expect("plain still opens"));
}
