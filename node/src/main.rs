//! The `meridian` binary: parse the command line and hand over to the library.

use clap::Parser;
use meridian::cli::{Cli, Command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // One-shot commands behave like other tools when piped into `head`; the
    // long-running ones keep SIGPIPE ignored so a closed socket is an error,
    // not a crash.
    if !matches!(cli.command, Command::Serve | Command::Demo(_)) {
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match meridian::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
