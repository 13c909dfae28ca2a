//! Harness for the end-to-end tests: real `meridian` processes in temporary
//! data directories, listening on port 0, driven through the real CLI and
//! real sockets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `meridian` binary, built once per test run.
pub fn meridian_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = manifest.parent().expect("tests/ sits in the workspace");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "meridian", "--bin", "meridian"])
            .current_dir(workspace)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the meridian binary failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace.join("target"));
        target.join("debug").join("meridian")
    })
}

/// One node: its data directory and, while it runs, its process.
pub struct TestNode {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub catalog: Option<std::net::SocketAddr>,
    child: Option<Child>,
}

impl TestNode {
    /// Creates a node with `meridian init` (listening on port 0) and starts it.
    pub fn start(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = Self {
            name: name.to_owned(),
            dir,
            catalog: None,
            child: None,
        };
        let out = node.run(&["init", "--node-id", name, "--listen", "127.0.0.1:0"]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut node = node;
        node.serve();
        node
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `meridian serve` and waits for its listening line.
    pub fn serve(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let mut child = Command::new(meridian_bin())
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .env("MERIDIAN_LOG__LEVEL", "warn")
            // Tests drive sync rounds with `sync now` (and hints).
            .env("MERIDIAN_SYNC__INTERVAL_SECS", "3600")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meridian serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{} exited before listening", self.name))
            .expect("read stdout");
        let addr = line
            .split_whitespace()
            .find_map(|part| part.strip_prefix("catalog="))
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line}"));
        self.catalog = Some(addr.parse().expect("catalog address"));
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a `meridian` command against this node's data directory.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Like [`run`](Self::run), feeding `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(meridian_bin());
        command.args(args).arg("--data-dir").arg(self.data_dir());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn meridian");
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("meridian runs")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "meridian {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A valid JSON Lines record with the given id and visibility.
pub fn record_line(id: &str, title: &str, visibility: &str) -> String {
    let mut value = serde_json::json!({
        "id": id,
        "title": title,
        "description": format!("Measurements for {title}."),
        "creators": [{"name": "Nansen, Fridtjof", "affiliation": "Polar Institute"}],
        "publisher": "Polar Data Center",
        "publication_year": 2021,
        "resource_type": "Dataset",
        "keywords": ["sea ice", "arctic"],
        "disciplines": ["earth"],
        "license": "CC-BY-4.0",
        "access": "open",
        "visibility": visibility,
        "updated_at": "2024-01-01T00:00:00Z",
    });
    if visibility == "groups" {
        value["groups"] = serde_json::json!(["polar-consortium"]);
    }
    value.to_string()
}

/// Reads `origin`'s record `id` as held at `node` (operator view, through
/// the admin socket); `None` when the node does not hold it.
pub async fn held(
    node: &TestNode,
    origin: &str,
    id: &str,
) -> Option<meridian::proto::DatasetRecord> {
    let mut admin = meridian::cli::admin_client(node.data_dir()).await.unwrap();
    match admin
        .get_record(meridian::proto::GetRecordRequest {
            origin: origin.into(),
            id: id.into(),
        })
        .await
    {
        Ok(view) => view.into_inner().record,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("get {origin}/{id} at {}: {status}", node.name),
    }
}

/// The node's TLS key as pinned by clients (from `meridian keys show --json`).
pub fn tls_key(node: &TestNode) -> Vec<u8> {
    use base64::Engine;
    let keys: serde_json::Value =
        serde_json::from_str(&node.ok(&["keys", "show", "--json"])).expect("keys json");
    base64::engine::general_purpose::STANDARD
        .decode(keys["tls_key"].as_str().expect("tls_key"))
        .expect("base64")
}

/// A TLS channel to `node` without a client certificate: an anonymous caller.
pub async fn anonymous_channel(node: &TestNode) -> tonic::transport::Channel {
    let config =
        meridian::tls::client_config(&node.name, vec![tls_key(node)], None).expect("tls config");
    let addr = node.catalog.expect("running").to_string();
    meridian::tls::connect(&addr, config, std::time::Duration::from_secs(5))
        .await
        .expect("connect")
}

impl TestNode {
    /// This node's invitation token.
    pub fn invite(&self) -> String {
        self.ok(&["keys", "show", "--invite"]).trim().to_owned()
    }

    /// Pins `other` in this node's trust store, in `groups`.
    pub fn trust(&self, other: &TestNode, groups: &[&str]) {
        let invite = other.invite();
        let mut args = vec!["trust", "add", invite.as_str()];
        let joined = groups.join(",");
        if !groups.is_empty() {
            args.extend(["--groups", joined.as_str()]);
        }
        self.ok(&args);
    }

    /// Runs `sync now` and returns its JSON reports, keyed by peer.
    pub fn sync_now(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let out = self.run(&["sync", "now", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("report json");
                (value["peer"].as_str().unwrap_or_default().to_owned(), value)
            })
            .collect()
    }

    /// `peers status --json`, keyed by peer.
    pub fn peers_status(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.ok(&["peers", "status", "--json"])
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("status json");
                (
                    value["node_id"].as_str().unwrap_or_default().to_owned(),
                    value,
                )
            })
            .collect()
    }

    /// Imports JSON Lines through the CLI; panics on failure.
    pub fn import(&self, lines: &[String]) {
        let out = self.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A TLS channel to `to` that presents `from`'s certificate: a pinned peer.
pub async fn peer_channel(from: &TestNode, to: &TestNode) -> tonic::transport::Channel {
    let identity = meridian::tls::TlsIdentity::load(from.data_dir()).expect("tls identity");
    let config = meridian::tls::client_config(&to.name, vec![tls_key(to)], Some(&identity))
        .expect("tls config");
    let addr = to.catalog.expect("running").to_string();
    meridian::tls::connect(&addr, config, std::time::Duration::from_secs(5))
        .await
        .expect("connect")
}
