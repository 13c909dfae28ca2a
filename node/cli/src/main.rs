//! The `meridian` binary: parse the command line, run the command, exit
//! with its status (0 success, 1 the command's own failure such as a
//! rejected import line, 2 an error).

mod cmd;
mod demo;
mod output;

use clap::Parser;

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
    }
    match cmd::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
