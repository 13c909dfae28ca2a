//! Connections that hold no request are closed after a while.
//!
//! A listener keeps at most `limits.max_connections` connections, so a
//! client that connects and then sends nothing would hold a slot for as
//! long as it likes: TCP and HTTP/2 keepalive only prove that it is alive.
//! Each accepted connection therefore carries an [`Activity`]: the
//! [`IdleLayer`] in front of every service counts the requests open on it
//! (a streamed response counts until its last frame is sent or the stream
//! is dropped), and the connection's reads end once no request has been
//! open for `limits.idle_timeout_secs` ([`IdleTimer`]). A long pull or a
//! slow search is never cut by this: only a connection with nothing open.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Extensions, Request, Response};
use tokio::time::{Instant, Sleep};

/// How many requests are open on one connection, and since when none has
/// been.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    open: usize,
    idle_since: Instant,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                open: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    /// Counts a request as open until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.lock().open += 1;
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `timeout`; `None` while
    /// a request is open.
    fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        let state = self.lock();
        (state.open == 0).then(|| state.idle_since + timeout)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain numbers: a panic elsewhere cannot leave
        // them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open request on a connection (see [`Activity::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.open -= 1;
        if state.open == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// Decides, for a connection's reads, when the connection has been idle
/// too long.
#[derive(Debug)]
pub struct IdleTimer {
    activity: Arc<Activity>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimer {
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        Self {
            activity,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// The connection's activity, for the requests made on it.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Whether the connection has held no request for the timeout. Called
    /// when a read is pending: until it says so, it keeps a timer that
    /// wakes `cx` to ask again.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let next = match self.activity.idle_until(self.timeout) {
                Some(until) if until <= Instant::now() => return true,
                Some(until) => until,
                // Busy: look again a timeout from now.
                None => Instant::now() + self.timeout,
            };
            self.timer.as_mut().reset(next);
        }
    }
}

/// Finds the activity of the connection a request came on, if it has one
/// (the admin socket's connections have none).
pub type FindActivity = fn(&Extensions) -> Option<Arc<Activity>>;

/// Counts each request as open on its connection until its response body
/// ends.
#[derive(Clone, Copy)]
pub struct IdleLayer {
    find: FindActivity,
}

impl IdleLayer {
    pub fn new(find: FindActivity) -> Self {
        Self { find }
    }
}

impl<S> tower::Layer<S> for IdleLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            find: self.find,
        }
    }
}

/// The service of [`IdleLayer`].
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    find: FindActivity,
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request open until its last frame or
    /// until it is dropped. It tells its size and its end as the body it
    /// wraps does, so an HTTP/1.1 answer keeps its `Content-Length`.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        open: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.open.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Counted<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes>,
{
    type Response = Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let in_flight = (self.find)(request.extensions()).map(|activity| activity.begin());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| CountedBody {
                inner,
                open: in_flight,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn expired(timer: &mut IdleTimer) -> bool {
        timer.poll_expired(&mut Context::from_waker(Waker::noop()))
    }

    /// Issue 9, item 5: a connection that holds no request is closed after
    /// the idle timeout; one with a request open is not, however long the
    /// request takes, and its idle time starts when the request ends.
    #[tokio::test]
    async fn only_a_connection_with_nothing_open_goes_idle() {
        let timeout = Duration::from_secs(1);
        let activity = Activity::new();
        let mut timer = IdleTimer::new(activity.clone(), timeout);
        assert!(!expired(&mut timer));

        let request = activity.begin();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!expired(&mut timer), "a request is open");
        drop(request);
        assert!(!expired(&mut timer), "it has just ended");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(expired(&mut timer), "idle for longer than the timeout");
    }

    #[tokio::test]
    async fn a_streamed_response_counts_until_its_body_is_dropped() {
        use tower::{Service, ServiceExt};
        let activity = Activity::new();
        let find: FindActivity = |extensions| extensions.get::<Arc<Activity>>().cloned();
        let mut service = IdleLayer::new(find).layer_fn_service();
        let mut request = Request::new(());
        request.extensions_mut().insert(activity.clone());
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(activity.idle_until(Duration::ZERO), None, "open");
        drop(response);
        assert!(activity.idle_until(Duration::ZERO).is_some(), "closed");
    }

    /// An answer of known size keeps it (hyper then sends `Content-Length`
    /// rather than chunks), and its request closes at its last frame even
    /// before the body is dropped.
    #[tokio::test]
    async fn a_counted_body_tells_its_size_and_closes_at_its_end() {
        use http_body::Body;
        use http_body_util::BodyExt;
        use tower::{Service, ServiceExt};
        let activity = Activity::new();
        let find: FindActivity = |extensions| extensions.get::<Arc<Activity>>().cloned();
        let mut service = tower::Layer::layer(
            &IdleLayer::new(find),
            tower::service_fn(|_: Request<()>| async {
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"hello"),
                )))
            }),
        );
        let mut request = Request::new(());
        request.extensions_mut().insert(activity.clone());
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let mut body = response.into_body();
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        assert_eq!(activity.idle_until(Duration::ZERO), None, "open");
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.frame().await.is_none());
        assert!(
            activity.idle_until(Duration::ZERO).is_some(),
            "closed at the end"
        );
        drop(body);
        assert!(activity.idle_until(Duration::ZERO).is_some());
    }

    impl IdleLayer {
        /// This layer around a service that answers every request with an
        /// empty body.
        fn layer_fn_service(
            self,
        ) -> Counted<
            impl tower::Service<
                    Request<()>,
                    Response = Response<http_body_util::Empty<bytes::Bytes>>,
                    Error = std::convert::Infallible,
                    Future: Send + 'static,
                > + Clone,
        > {
            tower::Layer::layer(
                &self,
                tower::service_fn(|_: Request<()>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new()))
                }),
            )
        }
    }
}
