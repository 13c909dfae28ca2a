//! The `meridian` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = meridian::cli::Cli::parse();
    match meridian::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}
