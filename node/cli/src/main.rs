//! The `meridian` binary: parse the command line, run the command, exit
//! with its status (0 success, 1 the command's own failure such as a
//! rejected import line, 2 an error).

mod cmd;
mod demo;
mod output;

use clap::Parser;

/// jemalloc, because a node's memory comes back to the system once a
/// catch-up or rebuild is done with it: glibc kept the pages sled had read
/// (a 1,000,000-record catch-up peaked at 1,004 MiB, and 1,086 MiB stayed
/// after an index rebuild that needed ~300 MiB). See docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (it reads this symbol at start; `_RJEM_MALLOC_CONF`
/// in the environment overrides it): freed pages go back to the system
/// after about a second, from jemalloc's own background thread, so a quiet
/// node gives back what a busy minute took.
#[allow(non_upper_case_globals)]
#[used]
#[unsafe(no_mangle)]
static _rjem_malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() {
    let cli = cmd::Cli::parse();
    // One-shot commands behave like other tools when piped into `head`; the
    // long-running ones keep SIGPIPE ignored so a closed socket is an error,
    // not a crash.
    if !cli.command.long_running() {
        // SAFETY: setting a signal disposition before any thread is spawned.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        // Warnings of work a one-shot command does itself (a backup or
        // fsck of a stopped node, a restore) reach the operator; a serving
        // node logs as its configuration says.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,tantivy=error"))
            .without_time()
            .with_target(false)
            .try_init();
    }
    match cmd::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
