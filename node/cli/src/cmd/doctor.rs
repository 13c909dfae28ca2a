//! `meridian doctor`: checks a data directory and, when the node runs, the
//! node itself, and says for each problem what to do about it.
//!
//! What it checks: the data directory's owner and mode, the configuration,
//! the identity key and the TLS keys (present, private, loadable), the
//! public certificate's validity, the clock, free disk space, whether the
//! node answers and its index has caught up, whether its listeners accept
//! connections, and whether its peers were reachable at the last sync.
//! Exit 1 when a check fails; warnings leave it 0.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use meridian_core::certificate;
use meridian_core::config::{Config, ADMIN_SOCKET, CONFIG_FILE, KEY_FILE};
use meridian_core::sign::NodeKey;
use meridian_proto as proto;
use serde::Serialize;

use super::admin;
use super::node::process_env;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Below this much free space on the data directory's file system, a
/// check fails; below ten times it, it warns.
const MIN_FREE_BYTES: u64 = 1 << 30;
/// A public certificate that expires within this many days is warned of.
const CERT_WARN_DAYS: i64 = 30;
/// How long a listener has to accept a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    verdict: Verdict,
    detail: String,
    /// What to do about it; empty when nothing is to be done.
    fix: String,
}

impl Check {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

pub async fn run(data_dir: &Path, args: &DoctorArgs) -> Result<i32> {
    let mut checks = at_rest(data_dir);
    let config = Config::load(data_dir, &process_env()).ok();
    checks.extend(running(data_dir, config.as_ref()).await);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let word = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            println!("{word}  {:<18} {}", c.check, c.detail);
            if !c.fix.is_empty() {
                println!("      {:<18} fix: {}", "", c.fix);
            }
        }
    }
    Ok(i32::from(checks.iter().any(|c| c.verdict == Verdict::Fail)))
}

/// Checks that need only the files: the node may be stopped.
fn at_rest(dir: &Path) -> Vec<Check> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            return vec![Check::fail(
                "data directory",
                format!("{shown} is not a directory"),
                "pass the directory `meridian init` made with --data-dir (or MERIDIAN_DATA_DIR)",
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                "data directory",
                format!("{shown}: {e}"),
                format!("create a node with `meridian init --node-id ID --data-dir {shown}`, or pass the right --data-dir"),
            )]
        }
    };
    let mut checks = vec![directory(dir, &meta)];
    if let Err(e) = meridian_core::node::refuse_unfinished_restore(dir) {
        checks.push(Check::fail(
            "restore",
            e.to_string(),
            format!("remove {shown} and run `meridian restore BACKUP --data-dir {shown}` again"),
        ));
    }
    checks.push(match Config::load(dir, &process_env()) {
        Ok(config) => Check::ok(
            "configuration",
            format!("{CONFIG_FILE}: node {}", config.node_id),
        ),
        Err(e) => Check::fail(
            "configuration",
            e.to_string(),
            format!("correct {shown}/{CONFIG_FILE} (or the MERIDIAN_* variable named)"),
        ),
    });
    checks.push(identity_key(&dir.join(KEY_FILE)));
    checks.push(private_file(
        "tls key",
        &dir.join(certificate::TLS_KEY_FILE),
    ));
    // Kept in the data directory only by some operators, and only for a
    // while during a rotation: checked when there.
    for (check, file) in [
        ("root key", meridian_core::node::ROOT_KEY_FILE),
        ("next identity key", meridian_core::node::NEXT_KEY_FILE),
    ] {
        if dir.join(file).exists() {
            checks.push(private_file(check, &dir.join(file)));
        }
    }
    if let Ok(config) = Config::load(dir, &process_env()) {
        let (cert, key) = config.public_identity_paths(dir);
        checks.push(private_file("public tls key", &key));
        checks.push(public_certificate(&cert));
    }
    checks.push(clock(dir));
    checks.push(disk_space(dir));
    checks
}

fn directory(dir: &Path, meta: &std::fs::Metadata) -> Check {
    let mode = meta.permissions().mode() & 0o7777;
    let uid = current_uid();
    if meta.uid() != uid {
        return Check::warn(
            "data directory",
            format!(
                "{} belongs to uid {}, not to this user (uid {uid})",
                dir.display(),
                meta.uid()
            ),
            "run meridian as the directory's owner, or `chown -R` it to the node's account",
        );
    }
    if mode & 0o077 != 0 {
        return Check::warn(
            "data directory",
            format!(
                "{} has mode {mode:04o}: other users can reach records that are not public{}",
                dir.display(),
                if mode & 0o022 != 0 {
                    ", and put a socket of their own where the CLI looks for the node's"
                } else {
                    ""
                }
            ),
            format!("chmod 700 {}", dir.display()),
        );
    }
    Check::ok(
        "data directory",
        format!("{} (mode {mode:04o})", dir.display()),
    )
}

/// This process's user id.
fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A key file must exist and be readable by its owner only.
fn private_file(check: &'static str, path: &Path) -> Check {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                Check::fail(
                    check,
                    format!("{} has mode {mode:04o}: group or others can read a private key", path.display()),
                    format!("chmod 600 {}", path.display()),
                )
            } else {
                Check::ok(check, format!("{} (mode {mode:04o})", path.display()))
            }
        }
        Err(e) => Check::fail(
            check,
            format!("{}: {e}", path.display()),
            "restore it from the node's backup; a node without its keys cannot serve (peers pin them)",
        ),
    }
}

fn identity_key(path: &Path) -> Check {
    let private = private_file("identity key", path);
    if private.verdict != Verdict::Ok {
        return private;
    }
    match NodeKey::load(path) {
        Ok(key) => Check::ok(
            "identity key",
            format!("{} ({})", path.display(), key.key_id()),
        ),
        Err(e) => Check::fail(
            "identity key",
            format!("{}: {e}", path.display()),
            "restore identity.key from the node's backup: peers pin this key",
        ),
    }
}

fn public_certificate(path: &Path) -> Check {
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) => {
            return Check::fail(
                "public certificate",
                format!("{}: {e}", path.display()),
                "set tls.public_cert to the certificate's path, or remove tls.public_cert and tls.public_key to use the one made at init",
            )
        }
    };
    let Some((not_before, not_after)) = certificate::validity_of_pem(&pem) else {
        return Check::fail(
            "public certificate",
            format!("{} holds no certificate that parses", path.display()),
            "replace it with a PEM certificate (the first in the file is the node's)",
        );
    };
    let now = unix_now();
    let days_left = (not_after - now) / 86_400;
    if now > not_after {
        Check::fail(
            "public certificate",
            format!("{} expired {} days ago", path.display(), -days_left),
            "renew it, then `kill -HUP` the node: clients refuse an expired certificate",
        )
    } else if now < not_before {
        Check::fail(
            "public certificate",
            format!(
                "{} is not valid yet (or the clock is behind)",
                path.display()
            ),
            "check the clock (see `clock` below) or the certificate's dates",
        )
    } else if days_left < CERT_WARN_DAYS {
        Check::warn(
            "public certificate",
            format!("{} expires in {days_left} days", path.display()),
            "renew it, then `kill -HUP` the node",
        )
    } else {
        Check::ok(
            "public certificate",
            format!("{} valid for {days_left} more days", path.display()),
        )
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The clock must not be behind what this node already wrote: signatures
/// and sync report times would go backwards. NTP synchronisation is asked
/// of systemd where it runs.
fn clock(dir: &Path) -> Check {
    let written = std::fs::metadata(dir.join(CONFIG_FILE))
        .and_then(|m| m.modified())
        .ok();
    let behind = written.and_then(|w| w.duration_since(SystemTime::now()).ok());
    if let Some(behind) = behind.filter(|b| *b > Duration::from_secs(300)) {
        return Check::fail(
            "clock",
            format!(
                "the clock is {} s behind the time {CONFIG_FILE} was written",
                behind.as_secs()
            ),
            "set the clock right (enable NTP: `timedatectl set-ntp true`)",
        );
    }
    match std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output()
    {
        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "no" => {
            Check::warn(
                "clock",
                "the clock is not synchronised (timedatectl: NTPSynchronized=no)",
                "enable NTP: `timedatectl set-ntp true`",
            )
        }
        _ => Check::ok("clock", "not behind what this node wrote"),
    }
}

fn disk_space(dir: &Path) -> Check {
    let Some((free, total)) = free_space(dir) else {
        return Check::warn(
            "disk space",
            "statvfs failed",
            "check the file system holding the data directory",
        );
    };
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let detail = format!("{:.1} GiB free of {:.1} GiB", gib(free), gib(total));
    if free < MIN_FREE_BYTES {
        Check::fail(
            "disk space",
            detail,
            "free space or move the data directory: sled and the index need room to write",
        )
    } else if free < 10 * MIN_FREE_BYTES {
        Check::warn(
            "disk space",
            detail,
            "plan for more room: imports and replicas grow the store and index",
        )
    } else {
        Check::ok("disk space", detail)
    }
}

/// Free bytes for an unprivileged user and total bytes of `dir`'s file
/// system.
fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid buffer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
}

/// Checks that ask the running node.
async fn running(dir: &Path, config: Option<&Config>) -> Vec<Check> {
    let mut client = match admin(dir).await {
        Ok(client) => client,
        Err(_) => {
            return vec![Check::warn(
                "node",
                format!("not running (no {} in {})", ADMIN_SOCKET, dir.display()),
                format!("start it: meridian serve --data-dir {}", dir.display()),
            )]
        }
    };
    let mut checks = Vec::new();
    match client.status(proto::StatusRequest {}).await {
        Ok(status) => {
            let status = status.into_inner();
            checks.push(if status.index_behind == 0 {
                Check::ok(
                    "node",
                    format!("{} answers; {} records, index caught up", status.node_id, status.records),
                )
            } else {
                Check::warn(
                    "node",
                    format!("{} entries not yet searchable", status.index_behind),
                    "wait for the index to catch up (`meridian health`); if it never does, `meridian index rebuild`",
                )
            });
            checks.push(listener("catalog listener", &status.listen));
            if let Some(http) = config.and_then(|c| c.http.listen) {
                if http.port() != 0 {
                    checks.push(listener("http listener", &http.to_string()));
                }
            }
        }
        Err(e) => checks.push(Check::fail(
            "node",
            format!("the admin socket answered with an error: {}", e.message()),
            "read the node's log; restart it if it is stuck",
        )),
    }
    match client.peers_status(proto::PeersStatusRequest {}).await {
        Ok(peers) => checks.extend(peer_checks(peers.into_inner().peers)),
        Err(e) => checks.push(Check::warn(
            "peers",
            e.message().to_owned(),
            "read the node's log",
        )),
    }
    checks
}

/// A listener accepts a TCP connection (an unspecified address is tried on
/// loopback).
fn listener(check: &'static str, address: &str) -> Check {
    let Ok(mut addr) = address.parse::<SocketAddr>() else {
        return Check::warn(
            check,
            format!("`{address}` is not an address"),
            "check `listen` in the configuration",
        );
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(_) => Check::ok(check, format!("{addr} accepts connections")),
        Err(e) => Check::fail(
            check,
            format!("{addr}: {e}"),
            "check that nothing else holds the port and that the node's log shows the listener bound",
        ),
    }
}

fn peer_checks(peers: Vec<proto::PeerStatus>) -> Vec<Check> {
    if peers.is_empty() {
        return vec![Check::warn(
            "peers",
            "no peers pinned yet",
            "exchange invitations: `meridian keys show --invite` here, `meridian trust add TOKEN` there, and the other way round",
        )];
    }
    peers
        .into_iter()
        .filter(|p| p.state == proto::PeerState::Active as i32)
        .map(|p| {
            if !p.keys_unverified.is_empty() {
                Check::fail(
                    "peer",
                    format!(
                        "{}: its key chain does not verify from the pinned root: {}",
                        p.node_id, p.keys_unverified
                    ),
                    format!(
                        "compare the root pinned for it (`meridian trust show {}`) with its operator's; \
                         its log is held back and its connections refused until the chain verifies",
                        p.node_id
                    ),
                )
            } else if p.last_sync.is_empty() && p.last_error.is_empty() {
                Check::warn(
                    "peer",
                    format!("{}: not synced yet", p.node_id),
                    "run `meridian sync now` to try it",
                )
            } else if !p.reachable || !p.last_error.is_empty() {
                Check::warn(
                    "peer",
                    format!("{}: {}", p.node_id, if p.last_error.is_empty() { "unreachable" } else { &p.last_error }),
                    format!(
                        "check that {} is reachable from here (firewall, DNS) and that its operator pinned this node",
                        p.endpoint
                    ),
                )
            } else {
                Check::ok("peer", format!("{}: synced {}", p.node_id, p.last_sync))
            }
        })
        .collect()
}
