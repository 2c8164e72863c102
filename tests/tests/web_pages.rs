//! The supervisors' web pages in a real browser: Debian's chromium, driven
//! by playwright-core (`tests/browser/pages.mjs`), against a real
//! `server serve --demo`.
//!
//! The town supervisor logs in, filters overdue petitions, opens one,
//! extends its deadline and adds a 督办 note, sees the change in the ledger
//! page, opens the statistics, the three lists and the devices, downloads
//! the ledger as XLSX and checks its rows; a cadre of the other town gets a
//! 404 page for that petition. Screenshots of every page go to
//! `target/screenshots/` (not committed). This test then checks through the
//! JSON API that the browser's actions are the petition's state.
//!
//! Needs Node 20+, `(cd tests/browser && npm ci)` and `/usr/bin/chromium`
//! (Debian's `chromium`; `fonts-noto-cjk` for the Chinese in screenshots).
//! Without them the test fails when `CI` is set and is skipped with a note
//! otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use e2e_tests::{ServerProcess, run_node};

/// The script's steps each wait at most 20 s; this only guards against a hang.
const NODE_TIMEOUT: Duration = Duration::from_secs(240);

/// The browser to drive (`CHROMIUM` overrides).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `tests/browser`, if Node, its packages and chromium are there.
fn browser_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let packages = dir.join("node_modules/playwright-core").is_dir();
    let browser = chromium().is_file();
    let missing = match (node, packages, browser) {
        (true, true, true) => return Some(dir),
        (false, _, _) => "`node` (20 or later) is not on PATH".to_owned(),
        (true, false, _) => {
            "tests/browser/node_modules is missing: run `(cd tests/browser && npm ci)`".to_owned()
        }
        (true, true, false) => format!(
            "{} is missing: install Debian's chromium (apt-get install chromium fonts-noto-cjk)",
            chromium().display()
        ),
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!in_ci, "the browser test cannot run in CI: {missing}");
    eprintln!("note: skipping the browser test: {missing}");
    None
}

/// `target/screenshots` (`CARGO_TARGET_DIR` respected).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_works_through_the_pages_in_a_browser() {
    let Some(dir) = browser_dir() else { return };
    let server = ServerProcess::start().await;
    // One phone that has synced just now, so the devices page shows a
    // fresh phone beside the demo cadres' silent ones.
    let mut phone = server.device("cadre01", "phone-1").await;
    let (_diary, _visit) = phone.create_diary(&mut StdRng::seed_from_u64(10));
    phone.sync().await;
    phone.close().await;
    let out = screenshots();
    let seen = run_node(
        &dir,
        "pages.mjs",
        NODE_TIMEOUT,
        |command| {
            command
                .args(["--base", &server.base_url()])
                .arg("--out")
                .arg(&out)
                .env("CHROMIUM", chromium());
        },
        &format!("(screenshots so far in {})", out.display()),
    )
    .await;
    eprintln!("browser: {seen}\nscreenshots: {}", out.display());

    // What the browser did is the petition's state in the JSON API.
    let token = server.login("sup-town1", "api-check").await;
    let id = seen["petition_id"].as_str().expect("petition id");
    let document = seen["document_id"].as_str().expect("document id");
    let (status, detail) = server
        .get_json(
            &format!("/api/v1/petitions/{id}?document_id={document}"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["petition"]["deadline"], seen["deadline"], "{detail}");
    assert_eq!(detail["petition"]["overdue"], false);
    let events = detail["events"].as_array().expect("events");
    let deadline_set = events
        .iter()
        .find(|e| e["type"] == "deadline_set" && e["by"] == "sup-town1")
        .unwrap_or_else(|| panic!("no deadline event by sup-town1: {detail}"));
    assert_eq!(deadline_set["via_server"], true);
    assert!(
        events.iter().any(|e| e["type"] == "supervised"
            && e["by"] == "sup-town1"
            && e["note"] == seen["note"]),
        "no 督办 note by sup-town1: {detail}"
    );
    let (_, overdue) = server
        .get_json("/api/v1/ledger?overdue=true&per_page=1", &token)
        .await;
    assert_eq!(overdue["total"], seen["overdue_total_after"]);
    let (_, all) = server.get_json("/api/v1/ledger?per_page=1", &token).await;
    assert_eq!(all["total"], seen["xlsx_rows"], "the XLSX held every row");

    for name in [
        "01-login",
        "03-ledger",
        "04-ledger-overdue",
        "05-petition",
        "06-petition-after-actions",
        "07-ledger-after",
        "08-stats",
        "09-lists",
        "10-devices",
        "11-ledger-tablet",
        "13-cadre-ledger",
        "14-cadre-other-town-petition",
    ] {
        let path = out.join(format!("{name}.png"));
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(size > 5_000, "{} is only {size} bytes", path.display());
    }
}
