//! Serving the model over any byte stream (real TCP in tests, turmoil in simulations), and
//! connecting an etcd client to it over turmoil.
//!
//! The server runs every connection, HTTP/2 stream and the lease sweep as tasks tied to one
//! cancellation token that the `serve` future holds: dropping that future is a crash that takes
//! everything with it, as a killed etcd process would. (tonic's own `Server` detaches its
//! connection tasks, which would outlive such a crash.)

use std::future::Future;
use std::io;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Spawns tasks that end when the token is cancelled.
#[derive(Clone)]
pub(crate) struct Scope(CancellationToken);

impl Scope {
    pub fn new() -> Self {
        Scope(CancellationToken::new())
    }

    /// Cancels every task of the scope when dropped.
    pub fn guard(&self) -> tokio_util::sync::DropGuard {
        self.0.clone().drop_guard()
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }
}

/// hyper spawns one task per HTTP/2 stream; they belong to the scope too.
impl<F> hyper::rt::Executor<F> for Scope
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.spawn(async move {
            fut.await;
        });
    }
}

/// Accepts connections from `incoming` and serves `routes` over HTTP/2 on each, until
/// `incoming` ends or fails.
pub(crate) async fn serve_routes<S, IO, E>(
    scope: &Scope,
    routes: Routes,
    incoming: S,
) -> Result<(), E>
where
    S: Stream<Item = Result<IO, E>>,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut incoming = std::pin::pin!(incoming);
    while let Some(io) = incoming.next().await {
        let io = io?;
        let service = TowerToHyperService::new(routes.clone());
        let http2 = hyper::server::conn::http2::Builder::new(scope.clone());
        scope.spawn(async move {
            // A connection error only ends that connection, as in any gRPC server.
            let _ = http2.serve_connection(TokioIo::new(io), service).await;
        });
    }
    Ok(())
}

/// The accepted connections of a real TCP listener, without Nagle's delay (as gRPC servers do).
pub(crate) fn tcp_incoming(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let conn = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((conn, listener))
    })
}

/// The accepted connections of a turmoil listener.
pub(crate) fn turmoil_incoming(
    listener: turmoil::net::TcpListener,
) -> impl Stream<Item = io::Result<turmoil::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let conn = listener.accept().await.map(|(stream, _)| stream);
        Some((conn, listener))
    })
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = io::Result<TokioIo<turmoil::net::TcpStream>>> + Send>>;

/// A tonic connector that dials over turmoil's network: the URI's `host:port` is resolved by
/// turmoil (host names are simulated host names).
pub fn turmoil_connector() -> impl tower::Service<
    Uri,
    Response = TokioIo<turmoil::net::TcpStream>,
    Error = io::Error,
    Future = ConnectFuture,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|uri: Uri| -> ConnectFuture {
        Box::pin(async move {
            let authority = uri.authority().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no host:port in {uri}"),
                )
            })?;
            let stream = turmoil::net::TcpStream::connect(authority.as_str()).await?;
            Ok(TokioIo::new(stream))
        })
    })
}

/// A lazily connecting tonic channel to `endpoint` over turmoil. Set timeouts and HTTP/2
/// keep-alives on the endpoint: `Client::from_channel` does not apply `ConnectOptions`.
pub fn turmoil_channel(endpoint: &tonic::transport::Endpoint) -> tonic::transport::Channel {
    endpoint.connect_with_connector_lazy(turmoil_connector())
}

/// An etcd client over turmoil to `uri` (say `http://etcd:2379`), with tonic's defaults.
pub async fn turmoil_client(uri: &str) -> Result<etcd_client::Client, etcd_client::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(uri.to_owned())?;
    let channel = etcd_client::Channel::Tonic(turmoil_channel(&endpoint));
    etcd_client::Client::from_channel(channel, None).await
}
