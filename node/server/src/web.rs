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

/// When a request reached the listener, before it waited for one of the
/// listener's places: a handler's deadline counts from it, as the
/// listener's request timeout does. A request that did not pass the
/// listener (a test's) arrived when it is read.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub std::time::Instant);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Arrived {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Arrived>()
            .copied()
            .unwrap_or_else(|| Arrived(std::time::Instant::now())))
    }
}

/// How long a request's body may take to arrive whole: a client that sends
/// its body a byte at a time holds one of the listener's request places for
/// no longer than this.
pub const BODY_ARRIVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request's body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the route takes.
    TooLarge,
    /// Not whole within [`BODY_ARRIVAL`].
    TooSlow,
    /// Broken off on its way (a reset stream, a malformed chunk): why.
    Broken(String),
}

/// Reads a request's body of at most `max` bytes, arriving within
/// [`BODY_ARRIVAL`].
pub async fn read_body(body: axum::body::Body, max: usize) -> Result<axum::body::Bytes, BodyError> {
    read_body_within(body, max, BODY_ARRIVAL).await
}

async fn read_body_within(
    body: axum::body::Body,
    max: usize,
    within: std::time::Duration,
) -> Result<axum::body::Bytes, BodyError> {
    match tokio::time::timeout(within, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(BodyError::TooSlow),
        Ok(Err(e)) => {
            let e = e.into_inner();
            let first: &(dyn std::error::Error + 'static) = &*e;
            let too_large = std::iter::successors(Some(first), |at| at.source())
                .any(|at| at.is::<http_body_util::LengthLimitError>());
            if too_large {
                return Err(BodyError::TooLarge);
            }
            Err(BodyError::Broken(e.to_string()))
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A body that never ends is given up when its time is out; one over
    /// the bound is too large; one that arrives is read.
    #[tokio::test]
    async fn a_body_must_arrive_whole_in_time_and_within_its_bound() {
        let pending = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let within = Duration::from_millis(50);
        let started = Instant::now();
        let slow = read_body_within(axum::body::Body::from_stream(pending), 1024, within).await;
        assert_eq!(slow.unwrap_err(), BodyError::TooSlow);
        assert!(started.elapsed() >= within && started.elapsed() < Duration::from_secs(5));
        let large = read_body(axum::body::Body::from(vec![0u8; 2048]), 1024).await;
        assert_eq!(large.unwrap_err(), BodyError::TooLarge);
        let read = read_body(axum::body::Body::from("verb=Identify"), 1024).await;
        assert_eq!(read.unwrap(), "verb=Identify");
        // A body broken off on its way is not called too large.
        let parts: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
            Ok(axum::body::Bytes::from_static(b"verb=")),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "stream reset",
            )),
        ];
        let broken = read_body(
            axum::body::Body::from_stream(futures::stream::iter(parts)),
            1024,
        )
        .await;
        match broken.unwrap_err() {
            BodyError::Broken(why) => assert!(why.contains("stream reset"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
