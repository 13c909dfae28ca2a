//! A TCP fault proxy for the partition suite: a node's peers reach it
//! through the proxy (its advertised endpoint), and the test switches the
//! link between passing, dropping, rejecting and delaying while streams
//! are open — what a network partition, a firewall, a flapping link or a
//! congested path does to a real deployment.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass both ways.
    Pass,
    /// Connections are accepted and stay open; nothing passes either way
    /// (a partition that drops packets, or a peer that never answers).
    Drop,
    /// Open connections are reset and new ones are reset at once (a
    /// firewall that rejects).
    Reject,
    /// Bytes pass, each read delayed by this long (a slow path).
    Delay(Duration),
}

/// A running proxy: listens on loopback port 0 and forwards to an upstream
/// set when known (a node's port is known only once it serves).
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// Starts a proxy that passes traffic, with no upstream yet.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (fault, watching) = watch::channel(Fault::Pass);
        let upstream = Arc::new(Mutex::new(None));
        runtime.spawn(accept(listener, watching, upstream.clone()));
        Self {
            addr,
            fault,
            upstream,
            _runtime: runtime,
        }
    }

    /// Where peers connect: the node's advertised endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where traffic goes.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().expect("upstream lock") = Some(upstream);
    }

    /// Changes what the link does, for open connections and new ones.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

async fn accept(
    listener: TcpListener,
    fault: watch::Receiver<Fault>,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let target = *upstream.lock().expect("upstream lock");
        let fault = fault.clone();
        tokio::spawn(async move {
            if *fault.borrow() == Fault::Reject {
                reset(client);
                return;
            }
            let Some(target) = target else {
                reset(client);
                return;
            };
            let Ok(server) = TcpStream::connect(target).await else {
                reset(client);
                return;
            };
            link(client, server, fault).await;
        });
    }
}

/// Closes with a TCP reset, as a rejecting firewall or a crashed host does.
fn reset(stream: TcpStream) {
    // Linger 0: close sends RST rather than FIN.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Forwards both ways under `fault` until either side closes or the link
/// rejects.
async fn link(client: TcpStream, server: TcpStream, fault: watch::Receiver<Fault>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, fault.clone()));
    let down = tokio::spawn(pump(server_read, client_write, fault));
    let (up, down) = (up.await, down.await);
    // A rejected link resets both ends.
    if let (Ok(Some((r1, w1))), Ok(Some((r2, w2)))) = (up, down) {
        if let (Ok(a), Ok(b)) = (r1.reunite(w2), r2.reunite(w1)) {
            reset(a);
            reset(b);
        }
    }
}

type Halves = (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
);

/// Copies `from` to `to` under the fault; returns the halves when the link
/// is rejected (so both sockets can be reset), `None` at a clean end.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) -> Option<Halves> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *fault.borrow_and_update() == Fault::Reject {
            return Some((from, to));
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return None;
                }
                Ok(n) => n,
            },
            changed = fault.changed() => {
                if changed.is_err() {
                    return None;
                }
                continue;
            }
        };
        let now = *fault.borrow();
        match now {
            Fault::Pass => {}
            Fault::Drop => continue,
            Fault::Reject => return Some((from, to)),
            Fault::Delay(by) => tokio::time::sleep(by).await,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// An echo server on loopback.
    fn echo() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(stream: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping")?;
        let mut got = [0u8; 4];
        stream.read_exact(&mut got)?;
        Ok(got.to_vec())
    }

    #[test]
    fn the_link_passes_drops_delays_and_rejects_as_told() {
        let proxy = FaultProxy::start();
        proxy.set_upstream(echo());
        let mut stream = std::net::TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(round_trip(&mut stream).unwrap(), b"ping");

        proxy.set(Fault::Drop);
        let err = round_trip(&mut stream).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err}"
        );

        proxy.set(Fault::Delay(Duration::from_millis(150)));
        let mut slow = std::net::TcpStream::connect(proxy.addr()).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut slow).unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(300));

        proxy.set(Fault::Reject);
        std::thread::sleep(Duration::from_millis(100));
        let err = round_trip(&mut slow).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            "{err}"
        );
        let mut refused = std::net::TcpStream::connect(proxy.addr()).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert!(round_trip(&mut refused).is_err());

        proxy.set(Fault::Pass);
        let mut again = std::net::TcpStream::connect(proxy.addr()).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(round_trip(&mut again).unwrap(), b"ping");
    }
}
