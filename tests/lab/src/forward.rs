//! The API forwarders: small HTTP/1.1 reverse proxies in front of the embedded API
//! server, through which the speakers (on 192.0.2.1:6443 in the bridge namespace) and
//! the controller (on `127.0.0.1:<port>` in the root namespace) reach it, and where the
//! lab injects the API-path faults of [`ApiFaults`].
//!
//! The speakers thus reach the API server over the lab's layer-2 network, as on a real
//! cluster, and a route in one node namespace cuts that node off. The lab's own client
//! and the user's kubectl use the API server directly, so that the lab can still seed
//! and observe while the path is broken.
//!
//! Each inbound connection gets its own upstream connection, opened at its first
//! request and reused for the next ones (keep-alive on both sides). Bodies stream
//! through frame by frame, so a watch passes its events as they come; the faults act
//! once per request, before it is forwarded:
//! - **delay**: the request waits `delay` (+ `write_delay` for a write) first;
//! - **fail**: the request is answered `503 Service Unavailable` with a Kubernetes
//!   Status body instead of being forwarded (what an overloaded API server, or one
//!   whose storage is gone, answers), so that clients take their retry path rather than
//!   a connection-error path;
//! - **down**: what a restart of the API server looks like to its clients: every open
//!   connection (watches included) is *reset* (RST, as when the process dies with data
//!   in flight), and the listener is closed, so that new connections are *refused*
//!   until `up`, when the forwarder listens again on the same address.
//!
//! Against an external `https` API server ([`crate::external`]) a forwarder relays
//! TCP instead ([`Relay::Tcp`]): the TLS session runs end to end, so only `down` (a
//! TCP-level fault) applies there; [`faults::needs_http`] names the others.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::error::LabError;
use crate::faults::{self, ApiFaults, SplitMix64};
use crate::netns::in_netns;

/// The body of a forwarded response: the upstream's, streamed, or the forwarder's own.
type Body = Either<Incoming, Full<Bytes>>;

/// The random rolls of the `fail` fault, shared by every forwarder of a lab.
pub type SharedRoll = Arc<Mutex<SplitMix64>>;

/// What a forwarder relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// HTTP/1.1 requests (every fault of [`ApiFaults`]).
    Http,
    /// Bytes of a TCP connection (TLS end to end; only [`ApiFaults::down`]).
    Tcp,
}

/// Where a forwarder listens.
#[derive(Debug, Clone)]
pub enum Place {
    /// In the lab process's own (root) network namespace.
    Root,
    /// Inside the named network namespace.
    Netns(String),
}

/// A running forwarder. Dropping it stops it (and resets its connections).
#[derive(Debug)]
pub struct ApiForwarder {
    addr: SocketAddr,
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl ApiForwarder {
    /// The address it listens on (the actual port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it listens now (false while the API server is down).
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// Waits until it listens (`true`) or has closed every connection and stopped
    /// listening (`false`), after a change of [`ApiFaults::down`].
    pub async fn wait_listening(&self, want: bool, within: Duration) -> Result<(), LabError> {
        let mut rx = self.listening.clone();
        let what = format!(
            "the API forwarder on {} to {}",
            self.addr,
            if want {
                "listen again"
            } else {
                "close its connections"
            }
        );
        match tokio::time::timeout(within, rx.wait_for(|l| *l == want)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(LabError::Config(format!(
                "{what}: the forwarder has stopped"
            ))),
            Err(_) => Err(LabError::Timeout {
                what,
                after: within,
            }),
        }
    }
}

impl Drop for ApiForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a forwarder listening on `listen` at `place` and relaying to the API server
/// at `target` (reached from the root namespace), with the faults `faults` says.
/// Call from a tokio runtime.
pub fn spawn(
    place: Place,
    listen: SocketAddr,
    target: SocketAddr,
    faults: watch::Receiver<ApiFaults>,
    roll: SharedRoll,
) -> Result<ApiForwarder, LabError> {
    spawn_relay(place, listen, target, Relay::Http, faults, roll)
}

/// [`spawn`] with the kind of relay: [`Relay::Tcp`] for a TLS API server.
pub fn spawn_relay(
    place: Place,
    listen: SocketAddr,
    target: SocketAddr,
    relay: Relay,
    faults: watch::Receiver<ApiFaults>,
    roll: SharedRoll,
) -> Result<ApiForwarder, LabError> {
    let first = bind(&place, listen)?;
    let addr = first
        .local_addr()
        .map_err(LabError::io(format!("reading the address of {listen}")))?;
    let first = TcpListener::from_std(first)
        .map_err(LabError::io(format!("registering listener {addr}")))?;
    let (listening_tx, listening) = watch::channel(true);
    let task = tokio::spawn(run(
        place,
        addr,
        first,
        (target, relay),
        faults,
        roll,
        listening_tx,
    ));
    Ok(ApiForwarder {
        addr,
        listening,
        task,
    })
}

/// Binds a listener at `addr` in `place` (a non-blocking std listener).
fn bind(place: &Place, addr: SocketAddr) -> Result<std::net::TcpListener, LabError> {
    let bind = move || {
        let l =
            std::net::TcpListener::bind(addr).map_err(LabError::io(format!("binding {addr}")))?;
        l.set_nonblocking(true)
            .map_err(LabError::io("setting a listener non-blocking"))?;
        Ok(l)
    };
    match place {
        Place::Root => bind(),
        Place::Netns(ns) => in_netns(ns, bind),
    }
}

/// The forwarder's life: serve while up; when down, close everything and wait for up.
async fn run(
    place: Place,
    addr: SocketAddr,
    first: TcpListener,
    (target, relay): (SocketAddr, Relay),
    mut faults: watch::Receiver<ApiFaults>,
    roll: SharedRoll,
    listening: watch::Sender<bool>,
) {
    let mut listener = Some(first);
    loop {
        // Down (or just told so): wait until up.
        loop {
            if !faults.borrow_and_update().down {
                break;
            }
            if faults.changed().await.is_err() {
                return;
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(&place, addr, &mut faults).await {
                Some(l) => l,
                None => return,
            },
        };
        listening.send_replace(true);
        let epoch = CancellationToken::new();
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = l.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let cancel = epoch.child_token();
                        match relay {
                            Relay::Http => conns.spawn(serve(stream, target, faults.clone(), roll.clone(), cancel)),
                            Relay::Tcp => conns.spawn(serve_tcp(stream, target, cancel)),
                        };
                    }
                }
                changed = faults.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if faults.borrow_and_update().down {
                        break;
                    }
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        // Refuse first, then reset what is open, then say so.
        drop(l);
        epoch.cancel();
        while conns.join_next().await.is_some() {}
        listening.send_replace(false);
    }
}

/// Binds `addr` again after a down, retrying while the port is busy (a client's
/// connection being torn down) and the path is still meant to be up.
async fn rebind(
    place: &Place,
    addr: SocketAddr,
    faults: &mut watch::Receiver<ApiFaults>,
) -> Option<TcpListener> {
    loop {
        let place2 = place.clone();
        let bound = tokio::task::spawn_blocking(move || bind(&place2, addr))
            .await
            .unwrap_or_else(|e| Err(LabError::Config(format!("binding {addr}: {e}"))))
            .and_then(|l| {
                TcpListener::from_std(l).map_err(LabError::io(format!("registering {addr}")))
            });
        match bound {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(error = %e, "API forwarder cannot listen again; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if faults.has_changed().is_err() {
            return None;
        }
    }
}

/// Serves one inbound connection until it ends or the API server goes down, when it
/// is reset.
async fn serve(
    stream: TcpStream,
    target: SocketAddr,
    faults: watch::Receiver<ApiFaults>,
    roll: SharedRoll,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to set a zero linger on it at a reset: the one
    // hyper owns cannot be reached once the connection is being served.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(control) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    // The upstream side ends only after the inbound one is reset: were it first, hyper
    // would end the inbound connection cleanly (FIN) before the reset.
    let upstream_done = CancellationToken::new();
    let _end_upstream = upstream_done.clone().drop_guard();
    let upstream = Arc::new(Upstream {
        target,
        sender: tokio::sync::Mutex::new(None),
        cancel: upstream_done,
    });
    let svc = service_fn(move |req| {
        let upstream = upstream.clone();
        let faults = faults.borrow().clone();
        let roll = roll.clone();
        async move { Ok::<_, Infallible>(handle(req, &upstream, &faults, &roll).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            // Closing with a zero linger sends RST: the client sees its connection
            // reset, as when the API server process dies.
            let _ = socket2::SockRef::from(&control).set_linger(Some(Duration::ZERO));
        }
        _ = conn => {}
    }
}

/// Relays one inbound TCP connection to `target` byte for byte until either side
/// closes it or the API server goes down, when it is reset (as in [`serve`]).
async fn serve_tcp(mut stream: TcpStream, target: SocketAddr, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let mut upstream = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            return;
        }
        up = TcpStream::connect(target) => match up {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!(error = %e, %target, "API forwarder cannot reach the API server");
                // A reset: what the client would see from a dead server.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
        },
    };
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => {}
    }
}

/// One request: decide its fate, then wait, fail, or forward it.
async fn handle(
    req: Request<Incoming>,
    upstream: &Upstream,
    faults: &ApiFaults,
    roll: &SharedRoll,
) -> Response<Body> {
    let verdict = {
        let mut rng = roll.lock().unwrap_or_else(|p| p.into_inner());
        faults::decide(faults, req.method(), &mut *rng)
    };
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    if verdict.fail {
        return status_response(
            StatusCode::SERVICE_UNAVAILABLE,
            faults::unavailable_status(faults.fail_percent),
        );
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    match upstream.send(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(e) => status_response(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("lab API forwarder: {e}"), "reason": "InternalError", "code": 502
            })
            .to_string(),
        ),
    }
}

fn status_response(code: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("a valid header"),
    );
    resp
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1): each side's
/// connection is hyper's to manage.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Removes the hop-by-hop headers, and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The upstream side of one inbound connection.
struct Upstream {
    target: SocketAddr,
    sender: tokio::sync::Mutex<Option<SendRequest<Incoming>>>,
    cancel: CancellationToken,
}

impl Upstream {
    /// Sends `req` on the upstream connection, opening it (again) if there is none or
    /// it closed (e.g. a watch whose client went away).
    async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, String> {
        let mut slot = self.sender.lock().await;
        let reusable = match slot.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.connect().await?,
        };
        let response = sender.send_request(req);
        *slot = Some(sender);
        drop(slot);
        response
            .await
            .map_err(|e| format!("forwarding to the API server at {}: {e}", self.target))
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, String> {
        let stream = TcpStream::connect(self.target)
            .await
            .map_err(|e| format!("connecting to the API server at {}: {e}", self.target))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with the API server at {}: {e}", self.target))?;
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = cancel.cancelled() => {}
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_apiserver::{ApiServer, ApiServerOptions};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-hop".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type", "transfer-encoding"]);
    }

    struct Setup {
        api: ferrolb_apiserver::RunningApiServer,
        faults: watch::Sender<ApiFaults>,
        fwd: ApiForwarder,
    }

    async fn setup() -> Setup {
        let api = ApiServer::start(ApiServerOptions::default()).await.unwrap();
        let (faults, rx) = watch::channel(ApiFaults::default());
        let fwd = spawn(
            Place::Root,
            "127.0.0.1:0".parse().unwrap(),
            api.local_addr(),
            rx,
            Arc::new(Mutex::new(SplitMix64::new(1))),
        )
        .unwrap();
        Setup { api, faults, fwd }
    }

    /// A kube client that goes through the forwarder.
    async fn client_via(s: &Setup) -> kube::Client {
        let yaml = s
            .api
            .kubeconfig_yaml()
            .replace(s.api.url(), &format!("http://{}", s.fwd.local_addr()));
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        // kube retries a 503 up to 15 times with a growing backoff (minutes in all):
        // these tests look at one answer.
        cfg.default_retry = false;
        kube::Client::try_from(cfg).unwrap()
    }

    fn cm(name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"}
        }))
        .unwrap()
    }

    /// A bare HTTP/1.1 GET with `Connection: close`; the status code.
    fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        out.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {out:?}")))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_and_watches_pass_and_a_watch_gets_no_per_event_delay() {
        let s = setup().await;
        let via: Api<ConfigMap> = Api::namespaced(client_via(&s).await, "default");
        let direct: Api<ConfigMap> = Api::namespaced(s.api.client().await.unwrap(), "default");
        via.create(&PostParams::default(), &cm("a")).await.unwrap();
        assert!(direct.get_opt("a").await.unwrap().is_some());

        let mut events = Box::pin(
            via.watch(&WatchParams::default().timeout(60), "0")
                .await
                .unwrap(),
        );
        use futures::StreamExt;
        // The existing object first.
        let first = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap();
        assert!(matches!(first, Some(Ok(WatchEvent::Added(_)))));
        // Delays apply per request: the open watch streams on at once.
        s.faults.send_modify(|f| f.delay = Duration::from_secs(2));
        let t = Instant::now();
        direct
            .create(&PostParams::default(), &cm("b"))
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap();
        assert!(
            matches!(next, Some(Ok(WatchEvent::Added(ref c))) if c.metadata.name.as_deref() == Some("b"))
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        // While a new request through the forwarder waits out the delay.
        let t = Instant::now();
        via.get("a").await.unwrap();
        assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn down_resets_connections_and_refuses_then_up_listens_again() {
        let s = setup().await;
        let addr = s.fwd.local_addr();
        assert_eq!(
            tokio::task::spawn_blocking(move || raw_get(addr, "/api/v1/namespaces"))
                .await
                .unwrap()
                .unwrap(),
            200
        );
        // An open watch, read past its headers.
        let mut watch = std::net::TcpStream::connect(addr).unwrap();
        watch
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            watch,
            "GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: lab\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 1024];
        let n = watch.read(&mut buf).unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );

        s.faults.send_modify(|f| f.down = true);
        s.fwd
            .wait_listening(false, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!s.fwd.is_listening());
        let ended = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 1024];
            loop {
                match watch.read(&mut buf) {
                    Ok(0) => return "eof".to_string(),
                    Ok(_) => continue,
                    Err(e) => return format!("{:?}", e.kind()),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(ended, "ConnectionReset");
        let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_err()
            .kind();
        assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);

        s.faults.send_modify(|f| f.down = false);
        s.fwd
            .wait_listening(true, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            tokio::task::spawn_blocking(move || raw_get(addr, "/api/v1/namespaces"))
                .await
                .unwrap()
                .unwrap(),
            200
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fail_answers_503_with_a_status_and_write_delay_spares_reads() {
        let s = setup().await;
        let addr = s.fwd.local_addr();
        s.faults.send_modify(|f| f.fail_percent = 100);
        let code = tokio::task::spawn_blocking(move || raw_get(addr, "/api/v1/namespaces"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 503);
        let via: Api<ConfigMap> = Api::namespaced(client_via(&s).await, "default");
        match via.get_opt("x").await.unwrap_err() {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 503);
                assert_eq!(status.reason, "ServiceUnavailable");
            }
            other => panic!("expected a 503 Status, got {other:?}"),
        }

        s.faults.send_replace(ApiFaults {
            write_delay: Duration::from_millis(600),
            ..ApiFaults::default()
        });
        let t = Instant::now();
        via.get_opt("x").await.unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        via.create(&PostParams::default(), &cm("x")).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tcp_relay_carries_tls_end_to_end_and_down_refuses() {
        let api = ApiServer::start(ApiServerOptions {
            tls: true,
            ..ApiServerOptions::default()
        })
        .await
        .unwrap();
        let (faults, rx) = watch::channel(ApiFaults::default());
        let fwd = spawn_relay(
            Place::Root,
            "127.0.0.1:0".parse().unwrap(),
            api.local_addr(),
            Relay::Tcp,
            rx,
            Arc::new(Mutex::new(SplitMix64::new(1))),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubeconfig");
        api.write_kubeconfig(&file).unwrap();
        let ext = crate::external::ExternalApi::load(&file).unwrap();
        // The client talks TLS to the real server through the relay: the server's
        // certificate verifies against its own name, not the relay's port.
        let yaml = ext.kubeconfig_via(fwd.local_addr());
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        cfg.default_retry = false;
        let via: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "default");
        via.create(&PostParams::default(), &cm("tls"))
            .await
            .unwrap();
        let direct: Api<ConfigMap> = Api::namespaced(api.client().await.unwrap(), "default");
        assert!(direct.get_opt("tls").await.unwrap().is_some());

        faults.send_modify(|f| f.down = true);
        fwd.wait_listening(false, Duration::from_secs(5))
            .await
            .unwrap();
        let refused =
            std::net::TcpStream::connect_timeout(&fwd.local_addr(), Duration::from_secs(2))
                .unwrap_err()
                .kind();
        assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);
        faults.send_modify(|f| f.down = false);
        fwd.wait_listening(true, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(via.get_opt("tls").await.unwrap().is_some());
    }
}
