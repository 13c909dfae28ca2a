//! `docs/tutorial.md`, run as written: two institutions on two machines,
//! each machine a network namespace of its own with the tutorial's address
//! (`ip netns`, a veth pair), so the tutorial's addresses and ports are real.
//!
//! In each `console` block, a line `polar$ …` or `uni$ …` is a command run
//! on that machine through `sh -c` (with the lines of a `<<'EOF'` document),
//! in one working directory both share (a file "sent" to the other operator
//! is simply there). `export` lines set the machine's environment; a command
//! ending in `&` runs in the background and its first line is checked. The
//! lines after a command are its expected output: `…` alone stands for any
//! lines, inside a line for any text. The data directory the tutorial names
//! is a temporary one per machine, in the commands and in their output.
//!
//! Namespaces need root (CAP_NET_ADMIN) and `ip`: without them the test is
//! skipped with a note, except under `CI`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use meridian_testkit::harness::{meridian_bin, without_meridian_env};

const TUTORIAL: &str = include_str!("../../docs/tutorial.md");
/// The data directory the tutorial names on both machines.
const TUTORIAL_DIR: &str = "/var/lib/meridian";
/// The tutorial's machines and their addresses.
const MACHINES: [(&str, &str); 2] = [("polar", "192.0.2.10"), ("uni", "192.0.2.20")];

/// One step of the tutorial.
#[derive(Debug)]
struct Step {
    machine: String,
    command: String,
    expected: Vec<String>,
}

fn steps() -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut lines = TUTORIAL.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            in_console = !in_console && line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        let prompt = MACHINES.iter().find_map(|(machine, _)| {
            Some((*machine, line.strip_prefix(machine)?.strip_prefix("$ ")?))
        });
        match prompt {
            Some((machine, command)) => {
                let mut command = command.to_owned();
                if command.ends_with("<<'EOF'") {
                    for more in lines.by_ref() {
                        command.push('\n');
                        command.push_str(more);
                        if more == "EOF" {
                            break;
                        }
                    }
                }
                steps.push(Step {
                    machine: machine.to_owned(),
                    command,
                    expected: Vec::new(),
                });
            }
            None => steps
                .last_mut()
                .expect("output follows a command")
                .expected
                .push(line.to_owned()),
        }
    }
    steps
}

/// Whether `actual` matches `expected`, where `…` in a line matches any
/// text and a line `…` any lines.
fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "…" => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => {
            !actual.is_empty() && line_matches(first, actual[0]) && matches(rest, &actual[1..])
        }
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return expected == actual;
    }
    if !actual.starts_with(first) || !actual[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct Network {
    names: BTreeMap<String, String>,
}

impl Network {
    fn create() -> Result<Self, String> {
        let id = std::process::id();
        let names: BTreeMap<String, String> = MACHINES
            .iter()
            .map(|(machine, _)| (machine.to_string(), format!("meridian-{machine}-{id}")))
            .collect();
        let network = Self { names };
        let links = [format!("vp{id}"), format!("vu{id}")];
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        for name in network.names.values() {
            ip(&["netns", "add", name])?;
        }
        ip(&[
            "link", "add", &links[0], "type", "veth", "peer", "name", &links[1],
        ])?;
        for ((machine, addr), link) in MACHINES.iter().zip(&links) {
            let ns = &network.names[*machine];
            ip(&["link", "set", link, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", link])?;
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// `sh -c command` on `machine`, in `dir`, with `env`.
    fn shell(
        &self,
        machine: &str,
        command: &str,
        dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Command {
        let mut shell = Command::new("ip");
        // Only the machine's own MERIDIAN_* variables reach it.
        without_meridian_env(&mut shell)
            .args(["netns", "exec", &self.names[machine], "sh", "-c", command])
            .current_dir(dir)
            .envs(env)
            .stdin(Stdio::null());
        shell
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for name in self.names.values() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The background processes the tutorial starts, stopped on drop.
struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SAFETY: the pid is our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

#[test]
fn the_tutorial_runs_as_written_on_two_machines() {
    let steps = steps();
    assert!(steps.len() >= 15, "{} steps read", steps.len());
    let network = match Network::create() {
        Ok(network) => network,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "network namespaces are needed: {e}"
            );
            eprintln!("skipped: no network namespaces here ({e})");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let bin_dir = meridian_bin().parent().unwrap().to_owned();
    let data_dirs: BTreeMap<String, PathBuf> = MACHINES
        .iter()
        .map(|(machine, _)| {
            (
                machine.to_string(),
                work.path().join(format!("{machine}-data")),
            )
        })
        .collect();
    let mut envs: BTreeMap<String, BTreeMap<String, String>> = MACHINES
        .iter()
        .map(|(machine, _)| {
            let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
            let env = BTreeMap::from([
                ("PATH".to_owned(), path),
                ("MERIDIAN_LOG__LEVEL".to_owned(), "warn".to_owned()),
            ]);
            (machine.to_string(), env)
        })
        .collect();
    let mut background = Background(Vec::new());
    let print = std::env::var_os("MERIDIAN_TUTORIAL_PRINT").is_some();

    for step in &steps {
        let data_dir = data_dirs[&step.machine].to_str().unwrap();
        let command = step.command.replace(TUTORIAL_DIR, data_dir);
        let env = envs.get_mut(&step.machine).unwrap();
        let what = format!("{}$ {}", step.machine, step.command);
        if let Some(assignment) = command.strip_prefix("export ") {
            let (key, value) = assignment.split_once('=').expect("export KEY=VALUE");
            env.insert(key.to_owned(), value.to_owned());
            continue;
        }
        let actual: Vec<String> = if let Some(command) = command.strip_suffix(" &") {
            let mut child = network
                .shell(&step.machine, &format!("exec {command}"), work.path(), env)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            std::thread::spawn(move || for _ in lines {});
            background.0.push(child);
            vec![first]
        } else {
            let out = network
                .shell(&step.machine, &command, work.path(), env)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{what}\nfailed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let actual: Vec<String> = actual
            .iter()
            .map(|line| line.replace(data_dir, TUTORIAL_DIR))
            .collect();
        if print {
            eprintln!("{what}\n{}", actual.join("\n"));
        }
        let lines: Vec<&str> = actual.iter().map(String::as_str).collect();
        assert!(
            matches(&step.expected, &lines),
            "{what}\nexpected:\n{}\nprinted:\n{}",
            step.expected.join("\n"),
            actual.join("\n")
        );
    }
}

#[test]
fn the_matcher_has_teeth() {
    let expected: Vec<String> = ["a …", "…", "z"].map(String::from).to_vec();
    assert!(matches(&expected, &["a b", "x", "y", "z"]));
    assert!(matches(&expected, &["a ", "z"]));
    assert!(!matches(&expected, &["b", "z"]));
    assert!(!matches(&expected, &["a b", "y"]));
    assert!(line_matches("pinned … at 1", "pinned x at 1"));
    assert!(!line_matches("pinned … at 1", "pinned x at 2"));
}
