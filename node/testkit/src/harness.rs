//! The real-process harness of the end-to-end tests and the benchmarks:
//! `meridian` processes in their own data directories, listening on port 0,
//! driven through the real CLI and real sockets.

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
        let workspace = manifest
            .ancestors()
            .nth(2)
            .expect("node/testkit sits in the workspace");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Every target of the workspace, as `cargo test --workspace` selects
        // them: the same features resolve, so the binary reuses what the
        // tests built instead of rebuilding its dependencies (a build of the
        // binary alone leaves out dev-dependencies' features, and each kind
        // of build would undo the other).
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--all-targets"])
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

/// Keeps every `MERIDIAN_*` variable of the test's own environment from
/// `command`. Those steer the tests and benchmarks (`MERIDIAN_LONG_TESTS`,
/// `MERIDIAN_CRASH_SEED`, …), not a node, and `meridian` refuses one that
/// names no configuration key: `MERIDIAN_LONG_TESTS=1 cargo test` would
/// otherwise stop every node at start. What a node is configured with is
/// set on the command explicitly.
pub fn without_meridian_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MERIDIAN_") {
            command.env_remove(name);
        }
    }
    command
}

/// A `meridian` command with none of the test's `MERIDIAN_*` variables.
fn meridian_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    without_meridian_env(&mut command);
    command
}

/// Where a node's data directory lives.
enum DataDir {
    /// Removed when the node is dropped.
    Temp(tempfile::TempDir),
    /// Left in place (a benchmark's work directory).
    At(PathBuf),
}

/// One node: its data directory and, while it runs, its `meridian serve`
/// process.
pub struct TestNode {
    pub name: String,
    dir: DataDir,
    bin: PathBuf,
    /// Extra `MERIDIAN_*` variables for `serve`.
    env: Vec<(String, String)>,
    pub catalog: Option<std::net::SocketAddr>,
    /// The HTTP listener's address, while it runs.
    pub http: Option<std::net::SocketAddr>,
    /// The metrics listener's address, while it runs.
    pub metrics: Option<std::net::SocketAddr>,
    child: Option<Child>,
}

impl TestNode {
    /// Creates a node with `meridian init` (listening on port 0) in a
    /// temporary directory and starts it, with the binary the tests build.
    pub fn start(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(meridian_bin(), DataDir::Temp(dir), name, Vec::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// [`TestNode::start`] with extra `MERIDIAN_*` variables for `serve`
    /// (kept for restarts).
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch(meridian_bin(), DataDir::Temp(dir), name, env)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Starts `bin` as node `name` in `dir`, made by `meridian init` on
    /// first use; `env` holds extra `MERIDIAN_*` variables.
    pub fn start_at(
        bin: &Path,
        dir: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch(bin, DataDir::At(dir.to_owned()), name, env)
    }

    fn launch(
        bin: &Path,
        dir: DataDir,
        name: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, String> {
        let mut node = Self {
            name: name.to_owned(),
            dir,
            bin: bin.to_owned(),
            env,
            catalog: None,
            http: None,
            metrics: None,
            child: None,
        };
        if !node.data_dir().join("meridian.toml").exists() {
            let out = node.run(&["init", "--node-id", name, "--listen", "127.0.0.1:0"]);
            if !out.status.success() {
                return Err(format!(
                    "init failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        node.try_serve()?;
        node.wait_ready()?;
        Ok(node)
    }

    /// Waits until the node says it serves (`meridian health`): a fresh
    /// node indexes its first entries just after it listens, and a test of
    /// anything but start-up should not race that.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.run(&["health"]);
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after 60 s: {}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn data_dir(&self) -> &Path {
        match &self.dir {
            DataDir::Temp(dir) => dir.path(),
            DataDir::At(dir) => dir,
        }
    }

    /// Starts `meridian serve` and waits for its listening line.
    pub fn serve(&mut self) {
        self.try_serve()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
    }

    fn try_serve(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} already running", self.name);
        let mut command = meridian_command(&self.bin);
        command
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .env("MERIDIAN_LOG__LEVEL", "warn")
            // Tests drive sync rounds with `sync now` (and hints).
            .env("MERIDIAN_SYNC__INTERVAL_SECS", "3600")
            // Metrics on a free loopback port, as an operator would keep them.
            .env("MERIDIAN_METRICS__LISTEN", "127.0.0.1:0");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn meridian serve: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.wait();
                return Err("exited before listening".into());
            }
        };
        let addr = line
            .split_whitespace()
            .find_map(|part| part.strip_prefix("catalog="))
            .ok_or_else(|| format!("unexpected first line from serve: {line}"))?;
        self.catalog = Some(addr.parse().map_err(|e| format!("catalog address: {e}"))?);
        let listed = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
                .and_then(|addr| addr.parse().ok())
        };
        self.http = listed("http");
        self.metrics = listed("metrics");
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the running node.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("the node is running");
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited
    /// cleanly within the 60 s the deployment files give a stop (a stop
    /// snapshots the store, which takes longer the more was written).
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
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
        let mut command = meridian_command(&self.bin);
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
        self.try_ok(args)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Runs a command and returns its stdout, or why it failed.
    pub fn try_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.run(args);
        if !out.status.success() {
            return Err(format!(
                "meridian {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn proc_file(&self, name: &str) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        std::fs::read_to_string(format!("/proc/{pid}/{name}")).ok()
    }

    /// CPU seconds the node has used, from /proc.
    pub fn cpu_secs(&self) -> Option<f64> {
        let stat = self.proc_file("stat")?;
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the line.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    fn status_kib(&self, field: &str) -> Option<f64> {
        let status = self.proc_file("status")?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Resident set size of the node now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.status_kib("VmRSS:").map(|kib| kib / 1024.0)
    }

    /// Peak resident set size of the node, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.status_kib("VmHWM:").map(|kib| kib / 1024.0)
    }

    /// Waits until the node uses under 5% of a core over two seconds: the
    /// indexer and the background merges have finished. Returns whether it
    /// went idle within `at_most`.
    pub fn wait_idle(&self, at_most: Duration) -> bool {
        let started = Instant::now();
        let Some(mut last) = self.cpu_secs() else {
            return false;
        };
        while started.elapsed() < at_most {
            std::thread::sleep(Duration::from_secs(2));
            let Some(now) = self.cpu_secs() else {
                return false;
            };
            if now - last < 0.1 {
                return true;
            }
            last = now;
        }
        false
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        match self.dir {
            // A benchmark's node shuts down cleanly: its directory stays usable.
            DataDir::At(_) => {
                self.stop();
            }
            DataDir::Temp(_) => self.kill9(),
        }
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
) -> Option<meridian_proto::DatasetRecord> {
    let mut admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .unwrap();
    match admin
        .get_record(meridian_proto::GetRecordRequest {
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
    let config = meridian_server::tls::client_config(&node.name, vec![tls_key(node)], None)
        .expect("tls config");
    let addr = node.catalog.expect("running").to_string();
    meridian_server::tls::connect(&addr, config, std::time::Duration::from_secs(5))
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
        let reports: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("reports: a JSON array");
        reports
            .into_iter()
            .map(|value| (value["peer"].as_str().unwrap_or_default().to_owned(), value))
            .collect()
    }

    /// `peers status --json`, keyed by peer.
    pub fn peers_status(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let peers: Vec<serde_json::Value> =
            serde_json::from_str(&self.ok(&["peers", "status", "--json"]))
                .expect("peers: a JSON array");
        peers
            .into_iter()
            .map(|value| {
                (
                    value["node_id"].as_str().unwrap_or_default().to_owned(),
                    value,
                )
            })
            .collect()
    }

    /// Imports JSON Lines through the CLI; panics on failure.
    pub fn import(&self, lines: &[String]) {
        self.import_with(lines, &[]);
    }

    /// Imports `lines` and returns once they are stored and signed, before
    /// they are searchable (`--no-wait`).
    pub fn import_no_wait(&self, lines: &[String]) {
        self.import_with(lines, &["--no-wait"]);
    }

    fn import_with(&self, lines: &[String], flags: &[&str]) {
        let mut args = vec!["holdings", "import", "-"];
        args.extend_from_slice(flags);
        let out = self.run_with_stdin(&args, Some(&lines.join("\n")));
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A TLS channel to `to` that presents `from`'s certificate: a pinned peer.
pub async fn peer_channel(from: &TestNode, to: &TestNode) -> tonic::transport::Channel {
    let identity = meridian_server::tls::TlsIdentity::load(from.data_dir()).expect("tls identity");
    let config = meridian_server::tls::client_config(&to.name, vec![tls_key(to)], Some(&identity))
        .expect("tls config");
    let addr = to.catalog.expect("running").to_string();
    meridian_server::tls::connect(&addr, config, std::time::Duration::from_secs(5))
        .await
        .expect("connect")
}
