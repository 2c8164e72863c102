//! An emulated 2G link between this process (the phones, in the root
//! network namespace) and a network namespace of its own (the server).
//!
//! The namespace is `vdweak-<pid>`; the phones' end is `10.213.7.1`, the
//! server's `10.213.7.2` (a /30). Each direction is shaped as `tc netem
//! delay D rate R limit 1000` shapes a queue: a packet leaves once the
//! packets before it have been sent at rate R, and arrives D later.
//!
//! - [`Kind::Netem`]: a veth pair with `netem` on both ends (phone → server on
//!   the phones' end, server → phone on the server's end). The counters are
//!   the veth's, Ethernet headers included.
//! - [`Kind::Emulated`]: for a kernel without `netem` (this one has
//!   `# CONFIG_NET_SCH_NETEM is not set` and no modules), two TUN devices,
//!   one in each namespace, and this process moves every IP packet from one
//!   to the other with the same model (queue of 1,000 packets, rate on the
//!   IP packet's length, then the delay). The counters are the TUN
//!   devices' (IP packets) and, as a cross-check, the emulator's own.
//!
//! Dropping the [`Link`] deletes the namespace (and with it the server's
//! end); a run that died leaves a namespace whose process is gone, which the
//! next run deletes first (and ends what still runs in it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The phones' address (root namespace).
pub const PHONE_ADDR: &str = "10.213.7.1";
/// The server's address (in the namespace).
pub const SERVER_ADDR: &str = "10.213.7.2";
const PREFIX: &str = "/30";
/// Namespaces of this bench are `vdweak-<pid>`.
const NS_PREFIX: &str = "vdweak-";
/// Interfaces are `vdwl<pid>p` (phones' end) and `vdwl<pid>s` (server's).
const IF_PREFIX: &str = "vdwl";
/// netem's default queue length, in packets.
const LIMIT_PACKETS: usize = 1000;

/// The link's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Server → phone, bits per second.
    pub down_bps: u64,
    /// Phone → server, bits per second.
    pub up_bps: u64,
    /// Added in each direction (the round trip adds twice this).
    pub one_way_delay: Duration,
}

/// How the link is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// veth + `tc qdisc … netem`.
    Netem,
    /// TUN devices and this process (no `netem` in the kernel).
    Emulated,
}

/// Which [`Kind`] to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// netem if the kernel has it, else emulated.
    Auto,
    /// Only netem: fail without it.
    Netem,
    /// Only the emulator.
    Emulated,
}

/// Bytes and packets of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub bytes: u64,
    pub packets: u64,
}

/// Both directions, as counted at the phones' end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Phone → server.
    pub up: Count,
    /// Server → phone.
    pub down: Count,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        let d = |a: Count, b: Count| Count {
            bytes: a.bytes - b.bytes,
            packets: a.packets - b.packets,
        };
        Counters {
            up: d(self.up, o.up),
            down: d(self.down, o.down),
        }
    }
}

/// The namespace and its link; torn down on drop.
#[derive(Debug)]
pub struct Link {
    pub ns: String,
    pub kind: Kind,
    pub shape: Shape,
    phone_if: String,
    emulator: Option<Emulator>,
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces and interfaces that runs which died left behind
/// (after ending the processes still in such a namespace: a server that
/// bench started); refuses if another run is going on (it holds the
/// addresses).
fn remove_stale() -> Result<(), String> {
    let own = std::process::id();
    for line in run(&["ip", "netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid: u32 = pid.parse().unwrap_or(0);
        if pid != own && pid != 0 && alive(pid) {
            return Err(format!(
                "namespace {name}: another run (process {pid}) is using the link's addresses"
            ));
        }
        eprintln!("weak_link: deleting {name}, left by a run that ended");
        for p in run(&["ip", "netns", "pids", name])?.split_whitespace() {
            let _ = run(&["kill", "-KILL", p]);
        }
        run(&["ip", "netns", "del", name])?;
    }
    for line in run(&["ip", "-o", "link", "show"])?.lines() {
        // "7: vdwl123p@if6: <…>" or "7: vdwl123p: <…>"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let Some(rest) = name.strip_prefix(IF_PREFIX) else {
            continue;
        };
        let pid: u32 = rest.trim_end_matches(['p', 's']).parse().unwrap_or(0);
        if pid != own && !alive(pid) {
            eprintln!("weak_link: deleting interface {name}, left by a run that ended");
            run(&["ip", "link", "del", name])?;
        }
    }
    Ok(())
}

impl Link {
    /// Makes the namespace and the link (deleting what a dead run left).
    pub fn up(shape: Shape, choice: Choice) -> Result<Link, String> {
        remove_stale()?;
        let pid = std::process::id();
        let ns = format!("{NS_PREFIX}{pid}");
        run(&["ip", "netns", "add", &ns])?;
        // From here on, dropping `link` deletes the namespace.
        let mut link = Link {
            ns,
            kind: Kind::Emulated,
            shape,
            phone_if: format!("{IF_PREFIX}{pid}p"),
            emulator: None,
        };
        link.ns_run(&["ip", "link", "set", "lo", "up"])?;
        let netem = match choice {
            Choice::Emulated => Err("not asked for".to_owned()),
            Choice::Auto | Choice::Netem => link.netem(),
        };
        match (netem, choice) {
            (Ok(()), _) => link.kind = Kind::Netem,
            (Err(e), Choice::Netem) => return Err(e),
            (Err(e), _) => {
                if choice == Choice::Auto {
                    eprintln!(
                        "weak_link: no netem here ({e}); emulating the link over TUN devices \
                         with netem's model"
                    );
                }
                link.emulated()?;
            }
        }
        Ok(link)
    }

    fn server_if(&self) -> String {
        format!("{IF_PREFIX}{}s", std::process::id())
    }

    /// `ip netns exec <ns> …`.
    fn ns_run(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all)
    }

    fn addresses(&self) -> Result<(), String> {
        let (p, s) = (self.phone_if.clone(), self.server_if());
        // No IPv6 (router solicitations, MLD) on the link: only the bench's
        // traffic is counted. Not every kernel has IPv6, hence no `?`.
        let off = |dev: &str| format!("echo 1 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
        let _ = run(&["sh", "-c", &off(&p)]);
        let _ = self.ns_run(&["sh", "-c", &off(&s)]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{PHONE_ADDR}{PREFIX}"),
            "dev",
            &p,
        ])?;
        run(&["ip", "link", "set", &p, "up"])?;
        let server = format!("{SERVER_ADDR}{PREFIX}");
        self.ns_run(&["ip", "addr", "add", &server, "dev", &s])?;
        self.ns_run(&["ip", "link", "set", &s, "up"])?;
        Ok(())
    }

    fn netem(&mut self) -> Result<(), String> {
        let (p, s) = (self.phone_if.clone(), self.server_if());
        let netns = self.ns.clone();
        run(&[
            "ip", "link", "add", &p, "type", "veth", "peer", "name", &s, "netns", &netns,
        ])?;
        let delay = format!("{}ms", self.shape.one_way_delay.as_millis());
        let limit = LIMIT_PACKETS.to_string();
        let shaped = (|| {
            let up = format!("{}bit", self.shape.up_bps);
            let down = format!("{}bit", self.shape.down_bps);
            run(&[
                "tc", "qdisc", "add", "dev", &p, "root", "netem", "delay", &delay, "rate", &up,
                "limit", &limit,
            ])?;
            self.ns_run(&[
                "tc", "qdisc", "add", "dev", &s, "root", "netem", "delay", &delay, "rate", &down,
                "limit", &limit,
            ])?;
            self.addresses()
        })();
        if shaped.is_err() {
            // Deleting one end deletes the pair.
            let _ = run(&["ip", "link", "del", &p]);
        }
        shaped
    }

    fn emulated(&mut self) -> Result<(), String> {
        let (p, s) = (self.phone_if.clone(), self.server_if());
        let phone = open_tun(&p).map_err(|e| format!("TUN device {p}: {e}"))?;
        let server = open_tun(&s).map_err(|e| format!("TUN device {s}: {e}"))?;
        // The device keeps its open file when it moves.
        run(&["ip", "link", "set", &s, "netns", &self.ns])?;
        self.addresses()?;
        self.emulator = Some(Emulator::start(phone, server, self.shape)?);
        Ok(())
    }

    /// The command that runs a program in the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.ns]
            .map(str::to_owned)
            .to_vec()
    }

    /// The phones' end's interface counters (`ip -s link`): sent = up.
    pub fn counters(&self) -> Result<Counters, String> {
        let json = run(&["ip", "-j", "-s", "link", "show", "dev", &self.phone_if])?;
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        let stats = &v[0]["stats64"];
        let count = |dir: &str| -> Result<Count, String> {
            let field = |f: &str| {
                stats[dir][f]
                    .as_u64()
                    .ok_or_else(|| format!("no stats64.{dir}.{f} in `ip -j -s link`: {json}"))
            };
            Ok(Count {
                bytes: field("bytes")?,
                packets: field("packets")?,
            })
        };
        Ok(Counters {
            up: count("tx")?,
            down: count("rx")?,
        })
    }

    /// The emulator's own counters (what it passed on, and what it dropped
    /// at a full queue), when the link is emulated.
    pub fn emulator_counters(&self) -> Option<(Counters, u64)> {
        self.emulator.as_ref().map(Emulator::counters)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Whatever still runs in the namespace is this run's (the server,
        // if it was not stopped first).
        if let Ok(pids) = run(&["ip", "netns", "pids", &self.ns]) {
            for p in pids.split_whitespace() {
                let _ = run(&["kill", "-KILL", p]);
            }
        }
        if let Err(e) = run(&["ip", "netns", "del", &self.ns]) {
            eprintln!("weak_link: {e}");
        }
        if self.kind == Kind::Netem {
            // Gone with the namespace (its peer was in it); in case not:
            let _ = run(&["ip", "link", "del", &self.phone_if]);
        }
        // TUN devices vanish when this process closes their files.
    }
}

/// Opens a new TUN device `name` (IP packets, no packet information
/// header); it exists until the returned file (and its clones) are closed.
#[allow(unsafe_code)]
fn open_tun(name: &str) -> std::io::Result<File> {
    // <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int).
    const TUNSETIFF: std::ffi::c_ulong = 0x4004_54ca;
    const IFF_TUN: std::ffi::c_short = 0x0001;
    const IFF_NO_PI: std::ffi::c_short = 0x1000;
    // <net/if.h>'s `struct ifreq`: the name, then a union of which the
    // flags are the first field (40 bytes in all on 64-bit Linux).
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: std::ffi::c_short,
        _union_rest: [u8; 22],
    }
    unsafe extern "C" {
        fn ioctl(fd: std::ffi::c_int, request: std::ffi::c_ulong, ...) -> std::ffi::c_int;
    }
    assert!(name.len() < 16, "interface name {name} too long");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TUN | IFF_NO_PI,
        _union_rest: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `file` is an open descriptor of /dev/net/tun and `req` is a
    // live, properly sized `struct ifreq` that the kernel reads and writes
    // only during the call.
    let rc = unsafe { ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut req) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// One direction of the emulated link.
#[derive(Debug, Default)]
struct Direction {
    bytes: AtomicU64,
    packets: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicUsize,
}

/// The threads that carry packets between the two TUN devices.
#[derive(Debug)]
struct Emulator {
    up: Arc<Direction>,
    down: Arc<Direction>,
}

impl Emulator {
    fn start(phone: File, server: File, shape: Shape) -> Result<Emulator, String> {
        let clone = |f: &File| f.try_clone().map_err(|e| format!("TUN device: {e}"));
        let (up, down) = (Arc::<Direction>::default(), Arc::<Direction>::default());
        let delay = shape.one_way_delay;
        carry(
            clone(&phone)?,
            clone(&server)?,
            shape.up_bps,
            delay,
            up.clone(),
        );
        carry(server, phone, shape.down_bps, delay, down.clone());
        Ok(Emulator { up, down })
    }

    fn counters(&self) -> (Counters, u64) {
        let count = |d: &Direction| Count {
            bytes: d.bytes.load(Ordering::Relaxed),
            packets: d.packets.load(Ordering::Relaxed),
        };
        let dropped =
            self.up.dropped.load(Ordering::Relaxed) + self.down.dropped.load(Ordering::Relaxed);
        (
            Counters {
                up: count(&self.up),
                down: count(&self.down),
            },
            dropped,
        )
    }
}

/// Reads packets from `from` and writes each to `to` when netem would:
/// after the packets before it have been sent at `bps` (its own length
/// included), plus `delay`. A packet that finds `LIMIT_PACKETS` waiting is
/// dropped. The threads end when a device goes away (or with the process).
fn carry(mut from: File, mut to: File, bps: u64, delay: Duration, dir: Arc<Direction>) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = dir.clone();
    std::thread::spawn(move || {
        for (at, packet) in rx {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let sent = to.write(&packet);
            writer.queued.fetch_sub(1, Ordering::Relaxed);
            if sent.is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        let mut free_at = Instant::now();
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok(n) = from.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            let now = Instant::now();
            if dir.queued.load(Ordering::Relaxed) >= LIMIT_PACKETS {
                dir.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let on_the_wire = Duration::from_nanos(n as u64 * 8 * 1_000_000_000 / bps);
            free_at = free_at.max(now) + on_the_wire;
            dir.queued.fetch_add(1, Ordering::Relaxed);
            dir.bytes.fetch_add(n as u64, Ordering::Relaxed);
            dir.packets.fetch_add(1, Ordering::Relaxed);
            if tx.send((free_at + delay, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
}
