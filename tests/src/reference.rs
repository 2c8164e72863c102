//! The reference sync server (`tests/js/reference-server.mjs`: the official
//! JS automerge-repo stack) as a child process, for benchmarks that measure
//! the same workload against it and against ours.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running `node reference-server.mjs`; killed (and its storage removed)
/// on drop.
#[derive(Debug)]
pub struct ReferenceServer {
    child: Child,
    addr: SocketAddr,
    // Dropped after the child is killed (fields drop after `Drop::drop`).
    _storage: tempfile::TempDir,
}

/// `tests/js`, where the script and its `node_modules` are.
fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

impl ReferenceServer {
    /// Starts the reference on a free loopback port with its storage in a
    /// fresh directory, and waits until it accepts sockets. Panics when
    /// Node.js or the script's packages are missing (`npm ci` in `tests/js`).
    pub fn start() -> Self {
        let dir = js_dir();
        assert!(
            dir.join("node_modules/@automerge/automerge-repo-storage-nodefs")
                .exists(),
            "the reference needs its packages: (cd tests/js && npm ci --no-audit --no-fund)"
        );
        let storage = tempfile::tempdir().expect("temporary storage directory");
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("reference-server.mjs")
            .arg("--dir")
            .arg(storage.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (Node.js 20 or later)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the reference's first line");
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the reference printed {line:?} ({e})"));
        let port = started["port"].as_u64().expect("a port") as u16;
        ReferenceServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _storage: storage,
        }
    }

    /// Where it listens (it takes a WebSocket upgrade on any path).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Node.js process, for its CPU time and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
