//! The `server` binary itself: help texts, `migrate`, `serve --demo` (real
//! process, real socket, SIGTERM) and `user add`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    // Only what the test sets may configure the child.
    for name in [
        "DATABASE_URL",
        "JWT_SECRET",
        "VISIT_DIARY_CONFIG",
        "VISIT_DIARY_PORT",
    ] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "warn");
    command
}

fn run(args: &[&str]) -> Output {
    server().args(args).output().expect("run server")
}

fn user_add(data_dir: &Path, username: &str, unit: &str) -> Output {
    let mut child = server()
        .args(["user", "add", "--data-dir"])
        .arg(data_dir)
        .args([
            "--username",
            username,
            "--role",
            "cadre",
            "--unit",
            unit,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret pass\n")
        .expect("write password");
    child.wait_with_output().expect("wait")
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["user", "--help"],
        &["user", "add", "--help"],
    ] {
        let output = run(args);
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let serve_help = String::from_utf8_lossy(&run(&["serve", "--help"]).stdout).into_owned();
    for flag in [
        "--port",
        "--host",
        "--data-dir",
        "--config",
        "--demo",
        "--demo-password",
    ] {
        assert!(serve_help.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn serve_without_a_key_explains_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = server()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_server_user_add_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");

    let migrated = server()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(dir.path().join("server.db").exists());

    let no_unit = user_add(dir.path(), "newcadre", "village1");
    assert!(!no_unit.status.success(), "no units before the demo");
    assert!(String::from_utf8_lossy(&no_unit.stderr).contains("no unit"));

    let mut child = server()
        .args(["serve", "--demo", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    // Read the banner until the last demo account is listed, then keep
    // draining stdout so the server never writes into a closed pipe.
    let (banner_tx, banner_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        let mut banner_tx = Some(banner_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if banner_tx.is_none() {
                continue;
            }
            banner.push_str(&line);
            banner.push('\n');
            if line.trim_start().starts_with("cadre12")
                && let Some(tx) = banner_tx.take()
            {
                let _ = tx.send(std::mem::take(&mut banner));
            }
        }
    });
    let banner = banner_rx.await.expect("the banner is printed");
    for account in [
        "admin",
        "sup-county",
        "sup-town1",
        "sup-town2",
        "cadre01",
        "cadre12",
    ] {
        assert!(banner.contains(account), "{account} missing from {banner}");
    }
    assert!(banner.contains("demo-pass"), "{banner}");
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .expect("URL in banner")
        .to_owned();
    assert!(dir.path().join("jwt-secret").exists());

    let client = reqwest::Client::new();
    let login = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": "cadre04", "password": "demo-pass"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let tokens: Value = login.json().await.expect("json");
    let me: Value = client
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["unit_code"], "village2");
    drop(client);

    // SIGTERM: the server shuts down gracefully and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    // Now the units exist.
    let added = user_add(dir.path(), "newcadre", "village1");
    assert!(added.status.success(), "{added:?}");
    assert!(String::from_utf8_lossy(&added.stdout).contains("created user newcadre"));
    let duplicate = user_add(dir.path(), "newcadre", "village1");
    assert!(!duplicate.status.success());
}
