//! The server killed with SIGKILL at 20 random moments while three cadres'
//! phones record and sync in bursts, on SQLite and on PostgreSQL. After each
//! restart every visit a phone saw acknowledged (its sync finished) is on
//! the server; at the end the ledger equals a fresh `ledger rebuild` and
//! every phone converges with the server.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_tests::{Database, Device, ServerProcess, server_binary};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sync_core::{DocumentId, RecordId};

const KILLS: usize = 20;
const CADRES: [&str; 3] = ["cadre01", "cadre02", "cadre03"];

struct Phone {
    user: &'static str,
    diary: DocumentId,
    /// Visits whose sync finished: the server has them.
    acknowledged: Arc<Mutex<BTreeSet<RecordId>>>,
}

fn visit_ids(device: &Device, diary: &DocumentId) -> BTreeSet<RecordId> {
    device
        .diary(diary)
        .all_visits()
        .iter()
        .map(|v| v.id)
        .collect()
}

/// Records and syncs until the connection dies (the server is killed);
/// each visit whose sync finished is noted as acknowledged.
async fn burst(
    mut device: Device,
    diary: DocumentId,
    acked: Arc<Mutex<BTreeSet<RecordId>>>,
    seed: u64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    loop {
        let id = device.add_visit(&diary, &mut rng);
        device.sync().await; // panics (ending this task) once the socket dies
        acked.lock().expect("lock").insert(id);
    }
}

async fn ledger(server: &ServerProcess) -> Value {
    let token = server.login("sup-county", "desk").await;
    let (status, body) = server.get_json("/api/v1/ledger?per_page=200", &token).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn rebuild(server: &ServerProcess) {
    let mut command = Command::new(server_binary());
    command
        .args(["ledger", "rebuild", "--data-dir"])
        .arg(server.data_dir())
        .env_remove("DATABASE_URL");
    if let Some(url) = server.database_url() {
        command.env("DATABASE_URL", url);
    }
    let out = command.output().expect("run ledger rebuild");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn kill_during_bursts(database: Database) {
    let mut server = ServerProcess::start_on(database).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut phones = Vec::new();
    for user in CADRES {
        let mut device = server.device(user, "phone").await;
        let (diary, first) = device.create_diary(&mut rng);
        device.sync().await;
        phones.push(Phone {
            user,
            diary,
            acknowledged: Arc::new(Mutex::new(BTreeSet::from([first]))),
        });
    }
    let mut lost = 0usize;
    for round in 0..KILLS {
        let mut tasks = Vec::new();
        for (i, phone) in phones.iter().enumerate() {
            let mut device = server.device(phone.user, "phone").await;
            device.request(phone.diary).await;
            let seed = (round * 10 + i) as u64;
            tasks.push(tokio::spawn(burst(
                device,
                phone.diary,
                Arc::clone(&phone.acknowledged),
                seed,
            )));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        server.kill_and_restart().await;
        for task in tasks {
            // Each ends with the socket's death; its panic is expected.
            let _ = task.await;
        }
        for phone in &phones {
            let mut check = server.device(phone.user, "check").await;
            check.request(phone.diary).await;
            let on_server = visit_ids(&check, &phone.diary);
            let acked = phone.acknowledged.lock().expect("lock").clone();
            let missing = acked.difference(&on_server).count();
            lost += missing;
            assert_eq!(
                missing, 0,
                "round {round}: {} lost {missing} acknowledged visits",
                phone.user
            );
        }
    }
    eprintln!(
        "{KILLS} kills on {}: acknowledged visits lost: {lost}; kept: {}",
        server.backend(),
        phones
            .iter()
            .map(|p| p.acknowledged.lock().expect("lock").len())
            .sum::<usize>()
    );

    // The ledger the server kept through the kills is the one a rebuild makes.
    let kept = ledger(&server).await;
    rebuild(&server);
    assert_eq!(
        ledger(&server).await,
        kept,
        "ledger == rebuild after the kills"
    );

    // Two phones of one cadre converge with the server.
    let phone = &phones[0];
    let mut a = server.device(phone.user, "a").await;
    let mut b = server.device(phone.user, "b").await;
    a.request(phone.diary).await;
    b.request(phone.diary).await;
    assert_eq!(visit_ids(&a, &phone.diary), visit_ids(&b, &phone.diary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_survive_sigkill_on_sqlite() {
    kill_during_bursts(Database::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_survive_sigkill_on_postgres() {
    let Some(database) = Database::postgres().await else {
        eprintln!("TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
        return;
    };
    kill_during_bursts(database).await;
}
