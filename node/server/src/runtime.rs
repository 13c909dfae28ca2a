//! The runtime of a serving node: it assembles the servers on their
//! listeners, starts the background tasks (indexer, replication rounds,
//! hints), and on shutdown drains the servers and stops every task.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use meridian_core::config::ADMIN_SOCKET;
use meridian_core::metrics::Listener;
use meridian_core::node::Node;
use meridian_core::sync::Replicator;
use meridian_proto::admin_server::AdminServer;
use meridian_proto::catalog_server::CatalogServer;
use meridian_proto::federation_server::FederationServer;
use meridian_proto::FILE_DESCRIPTOR_SET;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::UnixListenerStream;
use tonic_health::ServingStatus;

use crate::admin::AdminService;
use crate::catalog::{Catalog, CatalogService};
use crate::federation::FederationService;
use crate::forwarded::TrustedProxies;
use crate::stack::{self, Limited};
use crate::trust_check;

/// The services each listener advertises through reflection.
const CATALOG_SERVICE: &str = "meridian.v1.Catalog";
const FEDERATION_SERVICE: &str = "meridian.v1.Federation";
const ADMIN_SERVICE: &str = "meridian.v1.Admin";
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// How long stopping background tasks may take before they are abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections have to finish their requests once a stop is
/// asked for; then they are closed. HTTP/2's graceful close waits for the
/// client to answer a ping, so a client that stops answering (a hung
/// process, a hostile peer) would hold the node up until its keepalive
/// gives up, 50 s, past what an orchestrator waits before it kills.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    AdminSocket(#[from] crate::admin_socket::BindError),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("harvest sources: {0}")]
    Harvest(String),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The background tasks of a node, stopped together.
struct Tasks {
    stop: watch::Sender<bool>,
    set: JoinSet<()>,
}

impl Tasks {
    fn start(
        replicator: &Arc<Replicator>,
        harvester: &Arc<meridian_core::harvest::Harvester>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let node = replicator.node().clone();
        let interval = Duration::from_secs(node.config().sync.interval_secs);
        let mut set = JoinSet::new();
        set.spawn(meridian_core::indexer::run(node, stopped.clone()));
        set.spawn(replicator.clone().run(interval, stopped.clone()));
        set.spawn(replicator.clone().hint_on_growth(stopped.clone()));
        set.spawn(scheduled_harvests(harvester.clone(), stopped));
        Self { stop, set }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.set.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("background tasks did not stop in time; abandoning them");
            self.set.abort_all();
        }
    }
}

/// How often the schedule of the harvest sources is looked at.
const HARVEST_TICK: Duration = Duration::from_secs(30);

/// Runs each harvest source with `--every` when its next run is due; one
/// source at a time, so harvests never compete with each other for the
/// node's writer.
async fn scheduled_harvests(
    harvester: Arc<meridian_core::harvest::Harvester>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let due = {
            let harvester = harvester.clone();
            tokio::task::spawn_blocking(move || harvester.due(&meridian_core::date::now_rfc3339()))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        for name in due {
            if *stopped.borrow() {
                return;
            }
            match harvester.run(&name, &|_| {}).await {
                Ok(state) => {
                    tracing::info!(source = %name, added = state.added, changed = state.changed, deleted = state.deleted, rejected = state.rejected, "scheduled harvest done")
                }
                // The run has said so; the list goes on at the next tick.
                Err(meridian_core::harvest::HarvestError::PageCap(_)) => {}
                Err(e) => tracing::warn!(source = %name, error = %e, "scheduled harvest failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HARVEST_TICK) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Health and reflection (v1 and v1alpha) for one listener, which
/// advertises `services` (and health) only.
#[allow(clippy::type_complexity)]
fn support(
    services: &[&str],
) -> Result<
    (
        tonic_health::server::HealthReporter,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    ServeError,
> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        services.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH_SERVICE),
            |builder, service| builder.with_service_name(*service),
        )
    };
    let v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    Ok((reporter, health, v1, v1alpha))
}

/// A node's listeners, bound: the TCP listener of `Catalog` and
/// `Federation`, the HTTP and metrics listeners when configured, and the
/// admin socket.
pub struct Listeners {
    /// The address the TCP listener is bound to.
    pub catalog: SocketAddr,
    /// The address the HTTP listener is bound to, if there is one.
    pub http: Option<SocketAddr>,
    /// The address the metrics listener is bound to, if there is one.
    pub metrics: Option<SocketAddr>,
    /// The admin socket's path.
    pub admin_path: PathBuf,
    tcp: TcpListener,
    http_listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    admin: UnixListener,
    /// SIGHUP, caught from the moment the listeners are bound, so a reload
    /// asked for right after start is not the signal's default (exit).
    hangups: Option<tokio::signal::unix::Signal>,
}

impl Listeners {
    /// Binds the configured listener (port 0 picks a free port) and the
    /// admin socket in the data directory, and records the address peers
    /// dial: the configured `endpoint`, else the bound address.
    pub async fn bind(node: &Node) -> Result<Self, ServeError> {
        let listen = node.config().listen;
        let tcp = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let catalog = tcp.local_addr().map_err(|source| ServeError::Bind {
            addr: listen.to_string(),
            source,
        })?;
        node.set_endpoint(
            node.config()
                .endpoint
                .clone()
                .unwrap_or_else(|| catalog.to_string()),
        );
        let (http, http_listener) = bind_optional(node.config().http.listen).await?;
        let (metrics, metrics_listener) = bind_optional(node.config().metrics.listen).await?;
        let admin_path = node.data_dir().join(ADMIN_SOCKET);
        let admin = crate::admin_socket::bind(&admin_path).await?;
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        Ok(Self {
            catalog,
            http,
            metrics,
            admin_path,
            tcp,
            http_listener,
            metrics_listener,
            admin,
            hangups,
        })
    }

    /// Serves `node` on these listeners until `shutdown` resolves (see
    /// [`serve`]), then removes the admin socket.
    pub async fn serve(
        self,
        node: Arc<Node>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let result = run(
            node,
            self.tcp,
            self.http_listener,
            self.metrics_listener,
            self.admin,
            self.hangups,
            shutdown,
        )
        .await;
        let _ = std::fs::remove_file(&self.admin_path);
        result
    }
}

/// Runs the node: `Catalog` and `Federation` on `tcp` (TLS 1.3), the HTTP
/// server on `http` (if any), `Admin` on the Unix socket `admin`, and the
/// background tasks, until `shutdown` resolves; then drains in-flight
/// requests and stops the tasks. SIGHUP reloads the public certificate.
pub async fn serve(
    node: Arc<Node>,
    tcp: TcpListener,
    http: Option<TcpListener>,
    admin: UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    run(node, tcp, http, None, admin, hangups, shutdown).await
}

/// Binds `addr` when one is configured: the listener and its bound address.
async fn bind_optional(
    addr: Option<SocketAddr>,
) -> Result<(Option<SocketAddr>, Option<TcpListener>), ServeError> {
    let Some(addr) = addr else {
        return Ok((None, None));
    };
    let bind_error = |source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    Ok((
        Some(listener.local_addr().map_err(bind_error)?),
        Some(listener),
    ))
}

async fn run(
    node: Arc<Node>,
    tcp: TcpListener,
    http: Option<TcpListener>,
    metrics: Option<TcpListener>,
    admin: UnixListener,
    hangups: Option<tokio::signal::unix::Signal>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = node.config().limits.clone();
    let replicator = Replicator::new(node.clone(), crate::peer::connector(node.clone()));

    let (public_health, health, v1, v1alpha) = support(&[CATALOG_SERVICE, FEDERATION_SERVICE])?;
    let public_health = PublicHealth::new(public_health);
    public_health.set(ServingStatus::NotServing).await;
    let (admin_health, admin_health_service, admin_v1, admin_v1alpha) = support(&[ADMIN_SERVICE])?;
    // The operator's socket serves from the start: it is how a catching-up
    // node is watched.
    admin_health
        .set_serving::<AdminServer<AdminService>>()
        .await;

    let reads = Arc::new(Catalog::new(replicator.clone()));
    let catalog = CatalogServer::new(CatalogService::new(reads.clone())).limited(&limits);
    let federation =
        FederationServer::new(FederationService::new(replicator.clone())).limited(&limits);
    let harvester = Arc::new(
        meridian_core::harvest::Harvester::new(node.clone(), Arc::new(crate::fetch::HttpFetch))
            .map_err(|e| ServeError::Harvest(e.to_string()))?,
    );
    let admin_service = stack::operator(AdminService::new(replicator.clone(), harvester.clone()));

    let tasks = Tasks::start(&replicator, &harvester);
    let (stop_tx, stop_rx) = watch::channel(false);
    let manager = crate::notify::Notifier::from_env();
    let probed = node.clone();
    let health_task = tokio::spawn(report_health(
        move || probed.index_behind(),
        public_health.clone(),
        manager.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(async move {
        shutdown.await;
        manager.stopping();
        // Draining: load balancers and probes see NOT_SERVING before the
        // listeners stop taking connections.
        public_health.drain().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let presented = node.clone();
    let certs = Arc::new(crate::tls::CertResolver::new(
        Arc::new(move || presented.tls()),
        &node.public_identity().map_err(crate::tls::TlsError::from)?,
    )?);
    let reloader = tokio::spawn(reload_on_hangup(
        node.clone(),
        certs.clone(),
        hangups,
        stop_rx.clone(),
    ));
    let tls_config = crate::tls::server_config(certs.clone(), trust_check(node.clone()))?;
    let web = match http {
        Some(listener) => {
            let tls = if node.config().http.plaintext {
                None
            } else {
                Some(Arc::new(crate::tls::http_config(certs.clone())?))
            };
            let router = crate::http::router(replicator.clone(), reads.clone());
            let limits = limits.clone();
            let proxies = TrustedProxies::new(node.config().http.trusted_networks());
            let counted = node.metrics().clone();
            let stopped = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                crate::http::serve(listener, tls, router, &limits, proxies, &counted, stopped).await
            }))
        }
        None => None,
    };
    let scrapes = metrics.map(|listener| {
        tokio::spawn(crate::metrics::serve(
            listener,
            replicator.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    let public = stack::server(&limits)
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(catalog)
        .add_service(federation)
        .serve_with_incoming_shutdown(
            crate::tls::incoming(
                tcp,
                Arc::new(tls_config),
                crate::tls::ConnCaps::of(&limits, Listener::Grpc, node.metrics()),
            ),
            stopped(stop_rx.clone()),
        );
    let operator = stack::server(&limits)
        .add_service(admin_health_service)
        .add_service(admin_v1)
        .add_service(admin_v1alpha)
        .add_service(admin_service)
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(admin).map_ok(crate::admin_socket::authority::accept),
            stopped(stop_rx.clone()),
        );
    let servers = async {
        let (a, b) = tokio::join!(public, operator);
        if let Some(web) = web {
            match web.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "http server failed"),
                Err(e) => tracing::error!(error = %e, "http server stopped"),
            }
        }
        if let Some(scrapes) = scrapes {
            match scrapes.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "metrics server failed"),
                Err(e) => tracing::error!(error = %e, "metrics server stopped"),
            }
        }
        (a, b)
    };
    let drain_over = async {
        stopped(stop_rx).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let (a, b) = tokio::select! {
        done = servers => done,
        () = drain_over => {
            tracing::warn!(after = ?DRAIN_TIMEOUT, "connections still open after the stop; closing them");
            (Ok(()), Ok(()))
        }
    };
    reloader.abort();
    health_task.abort();
    tasks.stop().await;
    // What the last requests wrote (an import's checkpoint is written after
    // its entries are flushed) is on disk before the process exits: sled
    // writes on its own only every half second, and the process exits
    // without waiting for its threads.
    if let Err(e) = node.store().flush() {
        tracing::error!(error = %e, "cannot flush the store at the stop");
    }
    a?;
    b?;
    Ok(())
}

/// The public listener's health: the node as a whole (the empty service
/// name) and each public service, always together. Once drained it stays
/// NOT_SERVING, whatever the node's health says after.
#[derive(Clone)]
struct PublicHealth {
    reporter: tonic_health::server::HealthReporter,
    draining: Arc<tokio::sync::Mutex<bool>>,
}

impl PublicHealth {
    fn new(reporter: tonic_health::server::HealthReporter) -> Self {
        Self {
            reporter,
            draining: Arc::default(),
        }
    }

    async fn set(&self, status: ServingStatus) {
        for service in ["", CATALOG_SERVICE, FEDERATION_SERVICE] {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// Reports the node's health; false once the node drains (the status
    /// then stays NOT_SERVING).
    async fn follow(&self, status: ServingStatus) -> bool {
        let draining = self.draining.lock().await;
        if *draining {
            return false;
        }
        self.set(status).await;
        true
    }

    /// NOT_SERVING for good: the node stops.
    async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.set(ServingStatus::NotServing).await;
    }
}

/// How often public health is re-decided once the node has served.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Public health is SERVING while the index has caught up with the store
/// (a search before would miss records) and NOT_SERVING while it is behind
/// or the store cannot say: the decision `/healthz` and `meridian health`
/// make on every call. It is made again every `HEALTH_EVERY` (every 100 ms
/// until the first catch-up), both ways, until the drain at shutdown turns
/// it NOT_SERVING for good: an index that cannot advance or a failing store
/// takes the node out of a load balancer. The service manager (systemd's
/// `Type=notify`) hears `READY=1` at the first catch-up, and how far the
/// index is behind until then.
async fn report_health<E: std::fmt::Display + Send + 'static>(
    index_behind: impl Fn() -> Result<u64, E> + Clone + Send + 'static,
    health: PublicHealth,
    manager: crate::notify::Notifier,
    mut stop: watch::Receiver<bool>,
) {
    let mut reported = std::time::Instant::now();
    let mut ready = false;
    let mut serving = false;
    loop {
        let behind = index_behind.clone();
        let now = match tokio::task::spawn_blocking(behind).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(behind)) => {
                if !ready && reported.elapsed() >= Duration::from_secs(5) {
                    manager.catching_up(behind);
                    reported = std::time::Instant::now();
                }
                // Every bulk import or pull passes here: not a fault.
                Err((
                    format!("the index is {behind} entries behind the store"),
                    false,
                ))
            }
            Ok(Err(e)) => Err((
                format!("cannot tell how far the index is behind: {e}"),
                true,
            )),
            Err(e) => Err((format!("health check stopped: {e}"), true)),
        };
        if now.is_ok() != serving {
            let status = match now {
                Ok(()) => ServingStatus::Serving,
                Err(_) => ServingStatus::NotServing,
            };
            if *stop.borrow() || !health.follow(status).await {
                return;
            }
            serving = now.is_ok();
            match now {
                Ok(()) if !ready => {
                    ready = true;
                    manager.ready();
                    tracing::info!("index caught up; serving");
                }
                Ok(()) => tracing::info!("healthy again; serving"),
                Err((reason, false)) => {
                    tracing::info!(reason, "not serving while the index catches up")
                }
                Err((reason, true)) => tracing::warn!(reason, "unhealthy; not serving"),
            }
        }
        let pause = if ready {
            HEALTH_EVERY
        } else {
            Duration::from_millis(100)
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Reloads the public certificate on every SIGHUP, until `stop`; a bad
/// certificate is reported and the one in use is kept.
async fn reload_on_hangup(
    node: Arc<Node>,
    certs: Arc<crate::tls::CertResolver>,
    hangups: Option<tokio::signal::unix::Signal>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let reloaded = node
            .public_identity()
            .map_err(crate::tls::TlsError::from)
            .and_then(|public| certs.reload(&public));
        match reloaded {
            Ok(()) => tracing::info!("public certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "public certificate not reloaded; keeping the one in use")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tonic_health::pb::health_check_response::ServingStatus as Reported;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::server::{HealthReporter, HealthService};

    async fn status(service: &HealthService, name: &str) -> Reported {
        service
            .check(tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .status()
    }

    /// Waits (a few seconds at most) until the node as a whole and every
    /// public service report `want`.
    async fn becomes(service: &HealthService, want: Reported, why: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        loop {
            let mut all = Vec::new();
            for name in ["", CATALOG_SERVICE, FEDERATION_SERVICE] {
                all.push(status(service, name).await);
            }
            if all.iter().all(|s| *s == want) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{why}: {all:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Health follows the node both ways after it first served: an index
    /// that stops advancing or a store that cannot answer turns it
    /// NOT_SERVING, the recovery SERVING again, and the drain for good.
    #[tokio::test(flavor = "multi_thread")]
    async fn public_health_follows_the_node_until_the_drain() {
        let reporter = HealthReporter::new();
        let service = HealthService::from_health_reporter(reporter.clone());
        let health = PublicHealth::new(reporter);
        health.set(ServingStatus::NotServing).await;
        let behind: Arc<Mutex<Result<u64, String>>> = Arc::new(Mutex::new(Ok(7)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let probed = behind.clone();
        let task = tokio::spawn(report_health(
            move || probed.lock().unwrap().clone(),
            health.clone(),
            crate::notify::Notifier::default(),
            stop_rx,
        ));

        tokio::time::sleep(Duration::from_millis(300)).await;
        becomes(&service, Reported::NotServing, "behind at start").await;
        *behind.lock().unwrap() = Ok(0);
        becomes(&service, Reported::Serving, "caught up").await;
        *behind.lock().unwrap() = Ok(3);
        becomes(&service, Reported::NotServing, "index stuck").await;
        *behind.lock().unwrap() = Ok(0);
        becomes(&service, Reported::Serving, "index advanced").await;
        *behind.lock().unwrap() = Err("the store failed".into());
        becomes(&service, Reported::NotServing, "store failing").await;
        *behind.lock().unwrap() = Ok(0);
        becomes(&service, Reported::Serving, "store back").await;

        health.drain().await;
        let _ = stop_tx.send(true);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the health task ends at the stop")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        becomes(&service, Reported::NotServing, "drained").await;
    }
}
