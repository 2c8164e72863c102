//! `server backup` while a phone keeps syncing, then `server restore` into
//! a fresh data directory: the restored server has the users, every
//! document as of the backup (all acknowledged edits before it began), and
//! a ledger equal to a fresh `ledger rebuild`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use e2e_tests::{Database, ServerProcess, server_binary};
use rand::SeedableRng;
use serde_json::Value;

fn cli(args: &[&str], data_dir: &Path) -> String {
    let out = Command::new(server_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run server");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "server {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn ledger(server: &ServerProcess) -> Value {
    let token = server.login("sup-county", "desk").await;
    let (status, body) = server.get_json("/api/v1/ledger?per_page=200", &token).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_a_phone_syncs_restores_whole() {
    let server = ServerProcess::start_on(Database::Sqlite).await;
    let mut phone = server.device("cadre01", "phone").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (diary, _) = phone.create_diary(&mut rng);
    phone.sync().await;

    // The phone keeps recording and syncing while the backup runs.
    let acknowledged = Arc::new(AtomicUsize::new(phone.visit_count(&diary)));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let acknowledged = Arc::clone(&acknowledged);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                phone.add_visit(&diary, &mut rng);
                phone.sync().await;
                acknowledged.store(phone.visit_count(&diary), Ordering::SeqCst);
            }
            phone
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before_backup = acknowledged.load(Ordering::SeqCst);
    let copies = tempfile::tempdir().expect("tempdir");
    let file = copies.path().join("diaries.db");
    let data_dir = server.data_dir().to_owned();
    let said = tokio::task::spawn_blocking({
        let file = file.clone();
        move || cli(&["backup", file.to_str().expect("utf-8")], &data_dir)
    })
    .await
    .expect("backup task");
    assert!(said.contains("backed up"), "{said}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let phone = load.await.expect("load task");
    let after_backup = phone.visit_count(&diary);
    assert!(
        after_backup > before_backup,
        "the phone kept syncing meanwhile"
    );
    let ledger_before = ledger(&server).await;

    // Restored into a fresh directory, served again.
    let fresh = tempfile::tempdir().expect("tempdir");
    let said = cli(&["restore", file.to_str().expect("utf-8")], fresh.path());
    assert!(said.contains("restored"), "{said}");
    let restored = ServerProcess::start_in(fresh, Database::Sqlite, &[]).await;

    // Users: the same accounts log in.
    let _ = restored.login("cadre01", "phone-2").await;
    // Documents: everything acknowledged before the backup began, and
    // nothing that was not yet written when it ended.
    let mut phone2 = restored.device("cadre01", "phone-2").await;
    phone2.request(diary).await;
    let visits = phone2.visit_count(&diary);
    assert!(
        (before_backup..=after_backup).contains(&visits),
        "restored {visits} visits; {before_backup} were acknowledged before the backup, \
         {after_backup} after"
    );
    // Ledger: equal to what a rebuild from the restored documents gives.
    let restored_ledger = ledger(&restored).await;
    let dir = restored.data_dir().to_owned();
    tokio::task::spawn_blocking(move || cli(&["ledger", "rebuild"], &dir))
        .await
        .expect("rebuild task");
    assert_eq!(
        ledger(&restored).await,
        restored_ledger,
        "ledger == rebuild"
    );
    assert!(
        ledger_before["total"].as_i64().unwrap_or(0) > 0,
        "the demo ledger has petitions: {ledger_before}"
    );
}
