//! Meridian's wire contract, generated from `proto/meridian/v1/*.proto` by
//! tonic-prost-build. Nothing else lives here: the domain is in
//! `meridian-core`, the services in `meridian-server`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("meridian.v1");

/// Encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("meridian_descriptor");
