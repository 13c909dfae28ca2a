//! Every end-to-end suite, in one test binary: real `meridian` processes,
//! real sockets, several nodes at once. Each module is one suite;
//! `cargo test -p meridian-e2e -- crash::` runs one of them.

mod admin_socket;
mod adversarial;
mod cli;
mod crash;
mod federation;
mod health;
mod holdings;
mod hostile;
mod oai;
mod public_tls;
mod readme;
mod search;
mod stall;
