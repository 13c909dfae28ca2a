//! The one mapping from domain errors to gRPC status codes.
//!
//! Every variant of every error the core returns is named here, with no
//! wildcard, so a new variant does not compile until someone decides its
//! code. Invalid input is `INVALID_ARGUMENT`, an untrusted or refused caller
//! `UNAUTHENTICATED`/`PERMISSION_DENIED`, a state the request cannot change
//! `FAILED_PRECONDITION`, a peer or part that is down `UNAVAILABLE`.
//! `INTERNAL` is for faults of this node only: the error is logged with an
//! id and the caller gets nothing but `internal error (id …)`, never a path,
//! a database message or a panic text.
//!
//! Refused input also names the request field it is about, in the
//! `meridian-field` metadata of the status (proto field name), and
//! [`http`] maps every code to the HTTP status the HTTP API answers with.

use meridian_core::certificate::TlsError;
use meridian_core::config::ConfigError;
use meridian_core::index::IndexError;
use meridian_core::node::NodeError;
use meridian_core::query::SearchError;
use meridian_core::search::audit::AuditError;
use meridian_core::sign::SignError;
use meridian_core::store::StoreError;
use meridian_core::sync::SyncError;
use meridian_core::trust::TrustError;
use tonic::Status;

/// A fault of this node: logged in full under a fresh id, which is all the
/// caller learns.
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Status {
    let id = format!("{:016x}", rand::random::<u64>());
    tracing::error!(error_id = %id, error = %chain(error), "internal error");
    Status::internal(format!("internal error (id {id})"))
}

/// A worker task that failed (panicked or was cancelled).
pub fn join(error: tokio::task::JoinError) -> Status {
    internal(&error)
}

/// An error with its causes, for the node's own log and for operators.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Metadata key of the request field a refusal is about.
pub const FIELD: &str = "meridian-field";

/// INVALID_ARGUMENT about the request field `field` (its proto name).
pub fn invalid_field(field: &str, message: impl Into<String>) -> Status {
    let mut status = Status::invalid_argument(message);
    if let Ok(value) = field.parse() {
        status.metadata_mut().insert(FIELD, value);
    }
    status
}

/// The request field `status` is about, if it names one.
pub fn field(status: &Status) -> Option<&str> {
    status.metadata().get(FIELD).and_then(|v| v.to_str().ok())
}

/// The HTTP status of a gRPC code, as the HTTP API answers (the mapping
/// of `google.rpc.Code` and grpc-gateway).
pub fn http(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

pub fn node(error: NodeError) -> Status {
    match error {
        NodeError::BadPageToken => invalid_field("page_token", error.to_string()),
        NodeError::Invalid(_) | NodeError::BeyondLog { .. } => {
            Status::invalid_argument(error.to_string())
        }
        NodeError::NotFound { .. } => Status::not_found(error.to_string()),
        NodeError::Trust(e) => trust(e),
        NodeError::PeerUnverified { ref source, .. } => match **source {
            // What of its key sets does not verify: its operator can act on it.
            NodeError::Sign(_) => Status::unauthenticated(chain(&error)),
            // A fault of this node's store: the peer learns only that it
            // is not identified.
            _ => Status::unauthenticated(error.to_string()),
        },
        NodeError::Store(e) => store(e),
        NodeError::Config(ref e) => config(e),
        NodeError::Index(ref e) => index(e),
        NodeError::Sign(ref e) => sign(e),
        NodeError::Tls(ref e) => tls(e),
        NodeError::DataDir { .. } | NodeError::RestoreUnfinished { .. } => internal(&error),
        NodeError::Recovering | NodeError::Keys(_) | NodeError::Audience(_) => {
            Status::failed_precondition(error.to_string())
        }
    }
}

/// A harvest call that failed. The operator gave the URL, so the message
/// names it; a provider that failed is the provider's state, not a bug.
pub fn harvest(error: meridian_core::harvest::HarvestError) -> Status {
    use meridian_core::harvest::HarvestError;
    match error {
        HarvestError::Invalid(e) => invalid_field(&e.field.clone(), e.to_string()),
        HarvestError::NotFound(_) => Status::not_found(error.to_string()),
        HarvestError::Exists(_) => Status::already_exists(error.to_string()),
        HarvestError::Running(_) => Status::failed_precondition(error.to_string()),
        HarvestError::Fetch(_) | HarvestError::Protocol(_) => {
            Status::unavailable(error.to_string())
        }
        // The run did its share; the list goes on at the next run.
        HarvestError::PageCap(_) => Status::resource_exhausted(error.to_string()),
        HarvestError::Version { .. } => Status::failed_precondition(error.to_string()),
        HarvestError::Node(e) => node(e),
        HarvestError::Store(e) => store(e),
    }
}

/// A backup the node could not write. The operator asked for the path, so
/// the message names it.
pub fn backup(error: meridian_core::backup::BackupError) -> Status {
    use meridian_core::backup::BackupError;
    match error {
        BackupError::Exists(_) => Status::already_exists(error.to_string()),
        BackupError::Node(e) => node(e),
        other => Status::failed_precondition(other.to_string()),
    }
}

pub fn trust(error: TrustError) -> Status {
    match error {
        TrustError::Invite(_)
        | TrustError::Key(_)
        | TrustError::BadGroup(_)
        | TrustError::SelfPin(_) => Status::invalid_argument(error.to_string()),
        TrustError::AlreadyPinned(_) | TrustError::KeyInUse { .. } => {
            Status::already_exists(error.to_string())
        }
        TrustError::AmbiguousKey(_) => Status::permission_denied(error.to_string()),
        TrustError::UnknownPeer(_) => Status::not_found(error.to_string()),
        TrustError::Revoked(_) => Status::failed_precondition(error.to_string()),
        TrustError::Store(e) => store(e),
    }
}

pub fn audit(error: AuditError) -> Status {
    match error {
        AuditError::Since(_) => invalid_field("since", error.to_string()),
        AuditError::Store(e) => store(e),
        AuditError::Corrupt { .. } => internal(&error),
    }
}

pub fn search(error: SearchError) -> Status {
    match error {
        SearchError::Query { .. } => invalid_field("query", error.to_string()),
        SearchError::Cursor(_) => invalid_field("after", error.to_string()),
        SearchError::Invalid(ref what) => match search_field(what) {
            Some(field) => invalid_field(field, error.to_string()),
            None => Status::invalid_argument(error.to_string()),
        },
        SearchError::Unavailable(_) => Status::unavailable("search is unavailable; try again"),
        SearchError::Index(_) => internal(&error),
        SearchError::Deadline => Status::deadline_exceeded(error.to_string()),
    }
}

/// The field of `SearchRequest` an invalid-request message is about: the
/// core's messages start with the field's name (`limit 5000 is above…`,
/// `time_from: …`, `year range 2020..2010 is empty`).
fn search_field(message: &str) -> Option<&'static str> {
    let first = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()?;
    Some(match first {
        "limit" => "limit",
        "access" => "access",
        "disciplines" => "disciplines",
        "origins" => "origins",
        "licenses" => "licenses",
        "formats" => "formats",
        "bbox" => "bbox",
        "time_from" => "time_from",
        "time_to" => "time_to",
        "year" => "year_from",
        "after" => "after",
        _ => return None,
    })
}

/// Errors of the serving side of replication, as a peer sees them.
pub fn sync(error: SyncError) -> Status {
    match error {
        SyncError::Frozen(_) | SyncError::NotTrusted(_) | SyncError::HeldBack { .. } => {
            Status::failed_precondition(error.to_string())
        }
        SyncError::Unreachable { .. } => Status::unavailable(error.to_string()),
        SyncError::Stalled { .. } => Status::deadline_exceeded(error.to_string()),
        SyncError::Refused { .. } | SyncError::WrongNode { .. } | SyncError::Impostor { .. } => {
            Status::permission_denied(error.to_string())
        }
        SyncError::TooLarge { .. } | SyncError::Overrun { .. } | SyncError::Busy { .. } => {
            Status::resource_exhausted(error.to_string())
        }
        SyncError::Verify { .. }
        | SyncError::Checkpoint { .. }
        | SyncError::Sequence { .. }
        | SyncError::Invalid { .. }
        | SyncError::Unproven { .. }
        | SyncError::Equivocation { .. } => Status::data_loss(error.to_string()),
        SyncError::Malformed { .. } => Status::invalid_argument(error.to_string()),
        SyncError::Store(e) => store(e),
        SyncError::Trust(e) => trust(e),
        SyncError::Worker { .. } => internal(&error),
    }
}

pub fn store(error: StoreError) -> Status {
    match error {
        StoreError::Db(_)
        | StoreError::UnknownFormat { .. }
        | StoreError::Conflict { .. }
        | StoreError::Corrupt { .. } => internal(&error),
    }
}

fn config(error: &ConfigError) -> Status {
    match error {
        ConfigError::Read { .. } | ConfigError::Invalid { .. } | ConfigError::Override { .. } => {
            internal(error)
        }
    }
}

fn index(error: &IndexError) -> Status {
    match error {
        IndexError::SchemaVersion { .. }
        | IndexError::NotAnIndex(_)
        | IndexError::Io { .. }
        | IndexError::Tantivy(_) => internal(error),
    }
}

fn sign(error: &SignError) -> Status {
    // Reached through a node operation, each of these is an entry stored
    // here that no longer verifies, or this node's own key: a fault of this
    // node, never of the request.
    match error {
        SignError::TooLarge { .. }
        | SignError::WrongPayloadType { .. }
        | SignError::NoSignature
        | SignError::TooManySignatures { .. }
        | SignError::NotAKeyId { .. }
        | SignError::DuplicateSignature(_)
        | SignError::UnknownKey(_)
        | SignError::BadSignature { .. }
        | SignError::MalformedSignature { .. }
        | SignError::MalformedKey { .. }
        | SignError::WeakKey { .. }
        | SignError::KeyIdMismatch { .. }
        | SignError::DuplicateKey(_)
        | SignError::InvalidThreshold { .. }
        | SignError::ThresholdNotMet { .. }
        | SignError::Decode(_)
        | SignError::PayloadMismatch { .. }
        | SignError::OriginMismatch { .. }
        | SignError::BadCheckpointRoot { .. }
        | SignError::RetiredKey { .. }
        | SignError::RevokedCheckpoint { .. }
        | SignError::KeySetSkipped { .. }
        | SignError::KeySetReplayed { .. }
        | SignError::KeySetPosition { .. }
        | SignError::PinnedRootMissing { .. }
        | SignError::KeySetExpiry(_)
        | SignError::NoKeySet(_)
        | SignError::KeyFile { .. } => internal(error),
    }
}

fn tls(error: &TlsError) -> Status {
    match error {
        TlsError::File { .. } | TlsError::Invalid { .. } => internal(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_leave_only_an_id() {
        let error = NodeError::Store(StoreError::Corrupt {
            tree: "records_v1",
            detail: "/var/lib/meridian/store: bad bytes".into(),
        });
        let status = node(error);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().starts_with("internal error (id "),
            "{}",
            status.message()
        );
        assert!(!status.message().contains("/var/lib"));
        assert!(!status.message().contains("records_v1"));
    }

    #[tokio::test]
    async fn a_panic_text_never_reaches_the_caller() {
        let failed = tokio::spawn(async { panic!("local datetime out of valid range") })
            .await
            .unwrap_err();
        let status = join(failed);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            !status.message().contains("datetime"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn refusals_say_what_and_keep_their_codes() {
        let status = node(NodeError::BadPageToken);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("page_token"));
        assert_eq!(field(&status), Some("page_token"));
        let status = trust(TrustError::UnknownPeer("uni".into()));
        assert_eq!(status.code(), tonic::Code::NotFound);
        let status = sync(SyncError::Frozen("polar".into()));
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(field(&status), None);
    }

    /// A peer whose key chain does not verify is told so, naming it; why
    /// only when the reason is its key sets, never a fault of this store.
    #[test]
    fn an_unverified_peer_is_told_why_but_never_a_store_fault() {
        let unverified = |source: NodeError| {
            node(NodeError::PeerUnverified {
                peer: "polar".into(),
                source: Box::new(source),
            })
        };
        let pinned: meridian_core::sign::KeyId =
            "ed25519:00000000000000000000000000000000".parse().unwrap();
        let status = unverified(NodeError::Sign(SignError::PinnedRootMissing { pinned }));
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status
            .message()
            .starts_with("polar: its key chain does not verify"));
        assert!(
            status.message().contains("ed25519:0000"),
            "{}",
            status.message()
        );
        let status = unverified(NodeError::Store(StoreError::Corrupt {
            tree: "keysets_v1",
            detail: "/var/lib/meridian/store: bad bytes".into(),
        }));
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().starts_with("polar: "));
        assert!(
            !status.message().contains("/var/lib"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn refused_searches_name_their_field() {
        let named = |error: SearchError| {
            let status = search(error);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            field(&status).map(str::to_owned)
        };
        let query = SearchError::Query {
            position: Some(3),
            message: "unbalanced parenthesis".into(),
        };
        assert_eq!(named(query).as_deref(), Some("query"));
        assert_eq!(
            named(SearchError::Cursor("bad".into())).as_deref(),
            Some("after")
        );
        for (message, expected) in [
            ("limit 5000 is above the maximum of 1000", "limit"),
            ("time_to: not a date", "time_to"),
            ("time_from is after time_to", "time_from"),
            ("year range 2020..2010 is empty", "year_from"),
            ("bbox south 10 is above north 0", "bbox"),
            ("access: a filter value must be open", "access"),
        ] {
            assert_eq!(
                named(SearchError::Invalid(message.into())).as_deref(),
                Some(expected),
                "{message}"
            );
        }
    }

    #[test]
    fn http_statuses_follow_the_codes() {
        assert_eq!(http(tonic::Code::InvalidArgument), 400);
        assert_eq!(http(tonic::Code::NotFound), 404);
        assert_eq!(http(tonic::Code::ResourceExhausted), 429);
        assert_eq!(http(tonic::Code::Unavailable), 503);
        assert_eq!(http(tonic::Code::Internal), 500);
    }
}
