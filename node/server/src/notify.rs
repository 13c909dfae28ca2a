//! systemd's readiness protocol (`sd_notify(3)`): under a unit of
//! `Type=notify`, the service manager sets `NOTIFY_SOCKET` to a Unix datagram
//! socket and waits for `READY=1` before it counts the node as started (and
//! starts the units ordered after it). The node sends `READY=1` once its
//! listeners are bound and its index has caught up, the moment its public
//! health turns SERVING, and `STOPPING=1` when it starts to drain. While the
//! index catches up it reports how far behind it is in `STATUS=`, which
//! `systemctl status` shows.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing. A
//! socket path starts with `/`, or with `@` for Linux's abstract namespace.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends state changes to the service manager, if there is one.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    addr: Option<SocketAddr>,
}

impl Notifier {
    /// The notifier of this process: `NOTIFY_SOCKET` from its environment.
    /// An address the node cannot use is logged and ignored: readiness is
    /// then never reported, and systemd says so when the start times out.
    pub fn from_env() -> Self {
        let value = std::env::var_os(NOTIFY_SOCKET);
        Self::for_socket(value.as_deref()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring NOTIFY_SOCKET");
            Self::default()
        })
    }

    /// The notifier for the value of `NOTIFY_SOCKET` (none: no manager).
    pub fn for_socket(value: Option<&OsStr>) -> io::Result<Self> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Self::default());
        };
        let bytes = value.as_encoded_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(value)?,
            Some(b'@') => abstract_name(&bytes[1..])?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "`{}` is neither a socket path nor an abstract socket (@name)",
                        value.to_string_lossy()
                    ),
                ))
            }
        };
        Ok(Self { addr: Some(addr) })
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.addr.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) in one
    /// datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let Some(addr) = &self.addr else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        let sent = socket.send_to_addr(state.as_bytes(), addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ));
        }
        Ok(())
    }

    /// [`send`](Self::send), logging a failure: a lost notification must
    /// not stop the node.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(error = %e, state, "cannot notify the service manager");
        }
    }

    /// The node serves: listeners bound, index caught up.
    pub fn ready(&self) {
        self.notify("READY=1\nSTATUS=serving");
    }

    /// The node drains and stops.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=draining");
    }

    /// The node, drained, writes its store's snapshot; that takes longer
    /// the more was written since it started, so the stop gets 5 more
    /// minutes than `TimeoutStopSec`.
    pub fn snapshotting_store(&self) {
        self.notify("STATUS=writing the store's snapshot\nEXTEND_TIMEOUT_USEC=300000000");
    }

    /// Progress while the index catches up.
    pub fn catching_up(&self, behind: u64) {
        self.notify(&format!(
            "STATUS=index catching up: {behind} entries behind the store"
        ));
    }
}

#[cfg(target_os = "linux")]
fn abstract_name(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_name(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_datagrams_to_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::for_socket(Some(path.as_os_str())).unwrap();
        assert!(notifier.is_active());
        notifier.ready();
        notifier.stopping();
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving");
        assert_eq!(received(&listener), "STOPPING=1\nSTATUS=draining");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("meridian-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier::for_socket(Some(&OsString::from(format!("@{name}")))).unwrap();
        notifier.catching_up(42);
        assert_eq!(
            received(&listener),
            "STATUS=index catching up: 42 entries behind the store"
        );
    }

    #[test]
    fn no_socket_means_no_manager() {
        let notifier = Notifier::for_socket(None).unwrap();
        assert!(!notifier.is_active());
        notifier.send("READY=1").unwrap();
        assert!(!Notifier::for_socket(Some(OsStr::new("")))
            .unwrap()
            .is_active());
    }

    #[test]
    fn a_relative_or_vsock_address_is_refused() {
        for value in ["notify.sock", "vsock:2:1234"] {
            let err = Notifier::for_socket(Some(OsStr::new(value))).unwrap_err();
            assert!(err.to_string().contains(value), "{err}");
        }
    }

    #[test]
    fn a_vanished_manager_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let notifier = Notifier::for_socket(Some(path.as_os_str())).unwrap();
        assert!(notifier.send("READY=1").is_err());
    }
}
