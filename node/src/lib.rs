//! Meridian: a federated node for signed research-data metadata.
//!
//! Each institution runs one node. The node keeps the institution's holdings
//! index, signs every change into an append-only origin log, and exchanges
//! signed metadata with the peers its operator trusts. See `docs/architecture.md`.

pub mod proto {
    //! The wire contract, generated from `proto/meridian/v1/*.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("meridian.v1");

    /// Encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("meridian_descriptor");
}

pub mod cli;
pub mod config;
pub mod date;
pub mod demo;
pub mod generate;
pub mod index;
pub mod log;
pub mod merkle;
pub mod node;
pub mod record;
pub mod search;
pub mod server;
pub mod sign;
pub mod store;
pub mod sync;
pub mod tls;
pub mod trust;
