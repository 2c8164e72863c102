//! Running one of the suite's Node.js scripts (`tests/js`), which prints
//! what it saw as one line of JSON, last.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// Runs `node <script>` in `dir` with the arguments and environment
/// `configure` adds (stdin closed, killed if the test ends first), for at
/// most `timeout`; panics with its stderr (and `note`) when it fails.
/// Returns the JSON of its last line of output.
pub async fn run_node(
    dir: &Path,
    script: &str,
    timeout: Duration,
    configure: impl FnOnce(&mut Command),
    note: &str,
) -> Value {
    let mut command = Command::new("node");
    command.current_dir(dir).arg(script);
    configure(&mut command);
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .expect("node finishes in time")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} {note} failed ({}):\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}
