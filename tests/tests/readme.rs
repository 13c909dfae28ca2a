//! The README's commands, run as written against live nodes.
//!
//! Every line of a `sh` block of README.md that starts with `meridian ` or
//! `grpcurl ` is run through `sh -c`, with the README's example paths,
//! addresses and placeholders replaced by the test's own (a temporary data
//! directory, the port the node bound, a real invitation token and cursor).
//! Lines run in README order within four phases, so that no example depends
//! on one that the README shows later: set-up (`init`, `serve`), loading
//! (`holdings import|put`), reading and federating (everything else), and
//! last the commands that take something away (`holdings rm`,
//! `trust suspend|resume|revoke`). A README line that fails here fails for a
//! reader too.
//!
//! grpcurl is installed by `.ci/run`; where it is missing and `CI` is not
//! set, its lines are skipped with a note.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use meridian_testkit::generate::{Mix, Profile};
use meridian_testkit::harness::{meridian_bin, TestNode};

const README: &str = include_str!("../../README.md");
/// The data directory and addresses the README uses in its examples.
const README_DIR: &str = "/var/lib/meridian";
const README_LISTEN: &str = "0.0.0.0:7400";
const README_ADDRESS: &str = "127.0.0.1:7400";
/// The HTTP listener as the README's `curl` lines name it.
const README_HTTP: &str = "localhost:7480";
/// Records the test's holdings file and `record.json` hold together.
const HOLDINGS: u64 = 1 + 300 + 50 + 1;
/// The peer the README's trust examples name.
const README_PEER: &str = "university";

/// The README's shell commands that talk to a node, in order.
fn readme_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_shell = false;
    for line in README.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_shell = !in_shell && trimmed == "```sh";
            continue;
        }
        if in_shell
            && ["meridian ", "grpcurl ", "curl "]
                .iter()
                .any(|tool| trimmed.starts_with(tool))
        {
            commands.push(trimmed.to_owned());
        }
    }
    commands
}

/// The README's example record, as one JSON line.
fn readme_record() -> serde_json::Value {
    let block = README
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows an example record");
    serde_json::from_str(block).expect("the README's example record is JSON")
}

fn phase(command: &str) -> u8 {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["meridian", "init" | "serve", ..] => 0,
        ["meridian", "holdings", "import" | "put", ..] => 1,
        ["meridian", "holdings", "rm", ..] => 3,
        ["meridian", "trust", "suspend" | "resume" | "revoke", ..] => 3,
        _ => 2,
    }
}

struct Place {
    work: tempfile::TempDir,
    data_dir: PathBuf,
    address: Option<String>,
    /// The HTTP listener's port, once the node serves.
    http_port: Option<u16>,
    invite: String,
    cursor: String,
}

impl Place {
    fn expand(&self, command: &str) -> String {
        let mut line = command
            .replace(README_DIR, self.data_dir.to_str().expect("utf-8 path"))
            .replace(README_LISTEN, "127.0.0.1:0");
        if let Some(address) = &self.address {
            line = line.replace(README_ADDRESS, address);
        }
        if let Some(port) = self.http_port {
            line = line.replace(README_HTTP, &format!("localhost:{port}"));
        }
        if line.starts_with("meridian trust add TOKEN") {
            line = line.replace("TOKEN", &self.invite);
        }
        if line.contains("--after TOKEN") {
            line = line.replace("TOKEN", &self.cursor);
        }
        line
    }

    fn shell(&self, line: &str) -> Command {
        let bin_dir = meridian_bin().parent().expect("binary directory");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(line)
            .current_dir(self.work.path())
            .env("PATH", path)
            .env("MERIDIAN_DATA_DIR", &self.data_dir)
            .env("MERIDIAN_LOG__LEVEL", "warn")
            .env("MERIDIAN_SYNC__INTERVAL_SECS", "3600");
        command
    }

    /// Runs `line`; its stdout, or a panic naming the README line.
    fn run(&self, readme_line: &str, line: &str) -> String {
        let out = self.shell(line).output().expect("sh runs");
        assert!(
            out.status.success(),
            "README line `{readme_line}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the operator's search counts `count` records: the index
    /// catches up with an import asynchronously.
    fn wait_searchable(&self, count: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.run(
                "(waiting for the index)",
                "meridian search --limit 0 --json",
            );
            let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
            if answer["total"].as_u64() >= Some(count) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the index holds {} of {count} records",
                answer["total"]
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts the README's `serve` line and reads the address it bound.
    fn serve(&mut self, readme_line: &str, line: &str) -> Child {
        let mut child = self
            .shell(&format!("exec {line}"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("README line `{readme_line}` exited before listening"))
            .expect("read stdout");
        let address = first
            .split_whitespace()
            .find_map(|word| word.strip_prefix("catalog="))
            .unwrap_or_else(|| panic!("`{readme_line}` printed `{first}`"));
        self.address = Some(address.to_owned());
        self.http_port = first
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http="))
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
            .map(|addr| addr.port());
        std::thread::spawn(move || for _ in lines {});
        child
    }
}

fn grpcurl_available() -> bool {
    Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Holdings for the README's examples: its example record, and generated
/// records enough for facets, prefixes and a second page of "genome".
fn write_holdings(dir: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("holdings.jsonl")).unwrap();
    writeln!(file, "{}", readme_record()).unwrap();
    let mut mix = Mix::new(7);
    for n in 0..300 {
        writeln!(file, "{}", mix.record(n)).unwrap();
    }
    let mut generator = meridian_testkit::generate::Generator::new(Profile::Genomics, 3);
    for n in 1000..1050 {
        writeln!(file, "{}", generator.record(n)).unwrap();
    }
    let mut second = readme_record();
    second["id"] = "PDC-2021-0413".into();
    second["title"] = "Antarctic sea ice extent, 1979-2020".into();
    std::fs::write(
        dir.join("record.json"),
        serde_json::to_string_pretty(&second).unwrap(),
    )
    .unwrap();
}

#[test]
fn every_command_the_readme_shows_runs_against_a_live_node() {
    let commands = readme_commands();
    assert!(commands.len() > 20, "README commands found: {commands:?}");
    let grpcurl = grpcurl_available();
    if !grpcurl && std::env::var_os("CI").is_some() {
        panic!("grpcurl is not installed; .ci/run installs it");
    }

    let work = tempfile::tempdir().unwrap();
    write_holdings(work.path());
    let data_dir = work.path().join("node");
    let university = TestNode::start(README_PEER);
    let mut place = Place {
        data_dir,
        work,
        address: None,
        http_port: None,
        invite: university.invite(),
        cursor: String::new(),
    };
    let mut served: Option<Child> = None;
    let mut ran = 0;
    for step in 0..=3 {
        for readme_line in commands.iter().filter(|c| phase(c) == step) {
            if readme_line.starts_with("grpcurl ") && !grpcurl {
                eprintln!("skipped (no grpcurl): {readme_line}");
                continue;
            }
            if readme_line.contains("--after TOKEN") {
                let first = place.run(readme_line, "meridian search genome --limit 1 --json");
                let answer: serde_json::Value = serde_json::from_str(&first).unwrap();
                place.cursor = answer["next_cursor"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    !place.cursor.is_empty(),
                    "a search for genome has a second page: {answer}"
                );
            }
            if readme_line.starts_with("meridian sync now") {
                // The peer pins this node back, so the round succeeds.
                let keys = place.run(readme_line, "meridian keys show --invite");
                university.ok(&["trust", "add", keys.trim()]);
            }
            let line = place.expand(readme_line);
            if readme_line.starts_with("meridian serve") {
                served = Some(place.serve(readme_line, &line));
                continue;
            }
            let out = place.run(readme_line, &line);
            check(readme_line, &out);
            ran += 1;
        }
        if step == 1 {
            place.wait_searchable(HOLDINGS);
        }
    }
    assert!(served.is_some(), "the README shows how to serve a node");
    assert!(ran >= commands.len() - 4, "ran {ran} of {}", commands.len());
    if let Some(mut child) = served {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "serve stopped with {status}");
    }
}

/// What some lines must print besides exiting 0.
fn check(readme_line: &str, out: &str) {
    let expect = |needle: &str| {
        assert!(
            out.contains(needle),
            "README line `{readme_line}` printed:\n{out}\nwithout `{needle}`"
        )
    };
    if readme_line.starts_with("curl ") && readme_line.contains("/api/v1/records/") {
        expect("\"title\":\"Arctic sea ice thickness");
        expect("\"verifiedKeyId\"");
    } else if readme_line.starts_with("curl ") {
        let answer: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| {
            panic!("README line `{readme_line}` printed no JSON ({e}):\n{out}")
        });
        assert!(
            answer.get("hits").is_some() || answer.get("total").is_some(),
            "{answer}"
        );
    } else if readme_line.contains("meridian.v1.Catalog/GetRecord") {
        expect("Arctic sea ice thickness");
    } else if readme_line.contains("meridian.v1.Admin/Status") {
        expect("\"nodeId\": \"polar-dc\"");
    } else if readme_line.starts_with("grpcurl ") && readme_line.ends_with(" list") {
        expect("meridian.v1.Catalog");
    } else if readme_line.starts_with("meridian holdings import") {
        expect("rejected 0");
    } else if readme_line.starts_with("meridian holdings get") {
        expect("Arctic sea ice thickness");
    } else if readme_line.starts_with("meridian search \"sea ice\"") {
        expect("PDC-2021-0412");
    } else if readme_line.starts_with("meridian sync now") {
        expect("university");
    } else if readme_line.starts_with("meridian trust revoke") {
        expect("revoked");
    }
}
