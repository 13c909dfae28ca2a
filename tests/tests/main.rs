//! Every end-to-end suite, in one test binary: real `meridian` processes,
//! real sockets, several nodes at once. Each module is one suite;
//! `cargo test --workspace -- crash::` runs one of them.

mod admin_socket;
mod adversarial;
mod audience;
mod backup;
mod cli;
mod crash;
mod datacite;
mod deploy;
mod doctor;
mod federation;
mod harvest;
mod health;
mod holdings;
mod hostile;
mod http_api;
mod keys;
mod layers;
mod live_search;
mod metrics;
mod oai;
mod partition;
mod public_tls;
mod python_client;
mod readme;
mod record_model;
mod search;
mod search_page;
mod stall;
mod support;
mod tls_keys;
mod tutorial;
mod witness;
