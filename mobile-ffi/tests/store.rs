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
