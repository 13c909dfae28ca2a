//! What several suites share.

use std::process::Command;

/// Whether `tool` runs (`probe` exits 0). Without it a test is skipped with
/// a note, except under `CI`, where `.ci/run` installs every tool: there a
/// missing tool fails the test.
pub fn available(tool: &str, probe: &mut Command) -> bool {
    let found = probe.output().is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed; .ci/run installs it"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}
