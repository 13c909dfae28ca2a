//! What every HTTP route reads: the node's state and the client's address
//! (the listener itself, its stack and its routes are in [`crate::http`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use meridian_core::sync::Replicator;

use crate::catalog::Catalog;
use crate::idle::Activity;

/// What every route may read.
#[derive(Clone)]
pub struct AppState {
    pub replicator: Arc<Replicator>,
    /// The Catalog's reads and limits, shared with gRPC.
    pub catalog: Arc<Catalog>,
}

/// What the server knows of a request's connection: where it came from
/// and, over TLS, the requests open on it ([`crate::idle`]).
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub addr: SocketAddr,
    pub activity: Option<Arc<Activity>>,
}

/// The client's address, for handlers that need it, over TLS or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<ConnectInfo<ClientConn>>() {
            Some(conn) => Ok(Self(conn.addr)),
            None => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the connection's address is unknown",
            )),
        }
    }
}
