//! The admin socket: a Unix socket inside the data directory that only the
//! operator's account can reach, and the client every operator command uses.
//! The client talks only to a node running as its own user: what it sends
//! may be a root key, and a socket at the place it looks could be anyone's
//! (a relative `--data-dir` in a shared directory, a directory others may
//! write to).

pub mod authority;

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use meridian_core::config::ADMIN_SOCKET;
use meridian_proto::admin_client::AdminClient;
use tokio::net::UnixListener;
use tonic::transport::{Channel, Endpoint, Uri};

/// Largest message the operator's client and the admin socket's service
/// send or accept.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why the admin socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another node is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the admin socket at `path`: refuses if a live node holds it,
/// replaces a stale one, and restricts it to the operator's account.
pub async fn bind(path: &Path) -> Result<UnixListener, BindError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(BindError::AlreadyRunning(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    let bind_error = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    // The socket is made inside a directory only this account may enter,
    // restricted there, then moved into place: at no moment can another
    // account connect to it (a chmod after binding leaves a window, and the
    // umask is process-wide).
    let parent = path.parent().unwrap_or(Path::new("."));
    let private = tempfile::Builder::new()
        // As long as `admin.sock` with the staged name below: a path that
        // fits the socket length limit in place fits while staged.
        .prefix(".a")
        .tempdir_in(parent)
        .map_err(bind_error)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(bind_error)?;
    let staged = private.path().join("s");
    let listener = UnixListener::bind(&staged).map_err(bind_error)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(bind_error)?;
    std::fs::rename(&staged, path).map_err(bind_error)?;
    Ok(listener)
}

/// Why the operator's client could not reach the node.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no node is running in {dir} (no {ADMIN_SOCKET}); start it with `meridian serve --data-dir {dir}`"
    )]
    NotRunning { dir: String },
    #[error(
        "cannot look at the admin socket in {dir}: {source}; run the command as the user the node runs as \
         (e.g. `sudo -u meridian meridian ...`)"
    )]
    Unreadable {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the process listening on the admin socket in {dir} runs as uid {listener}, not as this user \
         (uid {own}); nothing was sent to it. Run the command as the user the node runs as \
         (e.g. `sudo -u meridian meridian ...`)"
    )]
    AnotherUser {
        dir: String,
        listener: u32,
        own: u32,
    },
    #[error("cannot reach the node's admin socket in {dir}: {source}")]
    Unreachable {
        dir: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to the admin socket of the node running in `data_dir`, if the
/// process listening there runs as this user.
pub async fn connect(data_dir: &Path) -> Result<AdminClient<Channel>, ConnectError> {
    connect_as(data_dir, own_uid()).await
}

/// [`connect`] for a client running as `own`.
async fn connect_as(data_dir: &Path, own: u32) -> Result<AdminClient<Channel>, ConnectError> {
    let socket = data_dir.join(ADMIN_SOCKET);
    let dir = data_dir.display().to_string();
    match std::fs::symlink_metadata(&socket) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConnectError::NotRunning { dir })
        }
        Err(source) => return Err(ConnectError::Unreadable { dir, source }),
    }
    // Where the connector leaves the uid of a listener of another user.
    let stranger = std::sync::Arc::new(std::sync::Mutex::new(None::<u32>));
    let seen = stranger.clone();
    let channel = Endpoint::from_static("http://admin.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            let seen = seen.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                let listener = stream.peer_cred()?.uid();
                if let Err(refusal) = same_user(listener, own) {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
                    return Err(refusal);
                }
                Ok(TokioIo::new(stream))
            }
        }))
        .await;
    let listener = *stranger.lock().unwrap_or_else(|p| p.into_inner());
    let channel = match (channel, listener) {
        (Ok(channel), None) => channel,
        (_, Some(listener)) => return Err(ConnectError::AnotherUser { dir, listener, own }),
        (Err(source), None) => return Err(ConnectError::Unreachable { dir, source }),
    };
    Ok(AdminClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Refuses a listener running as `listener` when this process runs as
/// `own`: the operator's commands go to a node of the operator's own.
fn same_user(listener: u32, own: u32) -> std::io::Result<()> {
    if listener == own {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("the admin socket's listener runs as uid {listener}, not {own}"),
    ))
}

/// The user this process runs as.
fn own_uid() -> u32 {
    // SAFETY: geteuid takes nothing, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Issue item (files): the socket appears in place already restricted
    /// to the operator's account, and nothing of the staging is left.
    #[tokio::test]
    async fn the_socket_appears_restricted_and_leaves_no_staging_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_SOCKET);
        let _listener = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(ADMIN_SOCKET)]);
        tokio::net::UnixStream::connect(&path).await.unwrap();
        assert!(matches!(
            bind(&path).await,
            Err(BindError::AlreadyRunning(_))
        ));
    }

    /// The client connects to a node of its own user, and to no other.
    #[tokio::test]
    async fn the_client_talks_only_to_a_listener_of_its_own_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_SOCKET);
        let listener = bind(&path).await.unwrap();
        tokio::spawn(async move { while listener.accept().await.is_ok() {} });
        // The connector runs at once, not at the first call.
        connect(dir.path()).await.unwrap();
        // As another user sees this node's socket.
        let other = own_uid().wrapping_add(1);
        let refused = connect_as(dir.path(), other).await.unwrap_err();
        match &refused {
            ConnectError::AnotherUser { listener, own, .. } => {
                assert_eq!((*listener, *own), (own_uid(), other));
            }
            other => panic!("{other}"),
        }
        let message = refused.to_string();
        assert!(message.contains("nothing was sent"), "{message}");
    }
}
