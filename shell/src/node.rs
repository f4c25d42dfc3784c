//! The node adapter: the iotex node's `/ha` admin endpoint and its readiness probe.
//!
//! The node never reports an error on `/ha`: it answers 200 to anything, ignores values other
//! than `true`/`false`, and only a read without parameters tells the mode. So we send exactly
//! `activate=true|false`, accept only 200, and parse reads strictly. Anything else is a
//! failure with a reason, never a panic.
//!
//! Only the node at the configured address may answer. Redirects are never followed: a 3xx
//! could otherwise "confirm standby" with the mode of another replica's node, or send
//! `activate=true` to it. Bodies are capped at [`MAX_BODY`]: the real node answers a few bytes,
//! and whatever answers more is not the node.

use crate::custody::KeyCustody;
use elector_core::NodeKeys;
use std::future::Future;
use std::time::Duration;

/// The largest body accepted from the node: its `/ha` and `/readiness` answers are a few bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// What an HTTP GET returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// The seam under the node adapter: one HTTP GET with a hard timeout. Production uses
/// [`ReqwestTransport`]; the simulation runs hyper over turmoil's network.
///
/// An implementation must not follow redirects (a 3xx is the answer, or an `Err` saying it was
/// refused) and should not read more than [`MAX_BODY`] bytes of a body; [`NodeClient`] refuses
/// any status but 200 and any longer body whatever the transport does.
pub trait HttpGet: Clone + Send + Sync + 'static {
    /// GET `url`; `Err` carries why no usable answer came (refused, reset, timed out, a
    /// redirect, a body over [`MAX_BODY`]).
    fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<HttpAnswer, String>> + Send;

    /// A request with the node's admin token and, for a PUT, a JSON body: key custody's
    /// `/producer-keys`. A transport that cannot send one says so (the simulation's, which
    /// does not model key custody).
    fn send(
        &self,
        request: HttpRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<HttpAnswer, String>> + Send {
        let _ = timeout;
        async move {
            Err(format!(
                "this transport cannot send {} {}",
                request.method.as_str(),
                request.url
            ))
        }
    }
}

/// `GET` or `PUT`, for [`HttpGet::send`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Put => "PUT",
        }
    }
}

/// A request to the node's admin endpoint carrying its admin token (`Authorization: Bearer`).
#[derive(Clone)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: String,
    pub bearer: String,
    /// A JSON body (`Content-Type: application/json`), for a PUT.
    pub json: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    /// The token and the body (a private key) are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.as_str(), self.url)
    }
}

/// Production HTTP client.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // The node is local; a proxy from the environment would be a misconfiguration.
            .no_proxy()
            // Only the node at the configured address may answer (see the module docs).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(ReqwestTransport { client })
    }
}

impl HttpGet for ReqwestTransport {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpAnswer, String> {
        self.answer(self.client.get(url), url, timeout).await
    }

    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpAnswer, String> {
        let builder = match request.method {
            HttpMethod::Get => self.client.get(&request.url),
            HttpMethod::Put => self.client.put(&request.url),
        }
        .bearer_auth(&request.bearer);
        let builder = match request.json {
            Some(json) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json),
            None => builder,
        };
        self.answer(builder, &request.url, timeout).await
    }
}

impl ReqwestTransport {
    /// Sends `request` and reads its answer, bounded by `timeout` as a whole.
    async fn answer(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer, String> {
        let call = async {
            let mut response = request.send().await.map_err(describe)?;
            let status = response.status().as_u16();
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
                let location = location.as_deref().unwrap_or("(no Location header)");
                return Err(format!(
                    "{url} answered HTTP {status}: redirect to {location} refused"
                ));
            }
            let too_long = || {
                format!("{url} answered HTTP {status} with a body over {MAX_BODY} bytes, refused")
            };
            if response
                .content_length()
                .is_some_and(|length| length > MAX_BODY as u64)
            {
                return Err(too_long());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(describe)? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_long());
                }
                body.extend_from_slice(&chunk);
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            Ok(HttpAnswer { status, body })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
        }
    }
}

fn describe(e: reqwest::Error) -> String {
    // reqwest's Display is terse; its source chain says what actually happened.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How long the node may take to answer: `call` for reads, probes and `activate=true`;
/// `standby` for `activate=false`, which iotex-core holds until the slot in progress starts
/// (`Timing::standby_call_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTimeouts {
    pub call: Duration,
    pub standby: Duration,
}

impl NodeTimeouts {
    /// The node timeouts of `timing`.
    pub fn of(timing: &elector_core::Timing) -> Self {
        NodeTimeouts {
            call: timing.node_timeout,
            standby: timing.standby_call_timeout(),
        }
    }
}

/// The node's admin and probe endpoints.
#[derive(Clone)]
pub struct NodeClient<T> {
    transport: T,
    admin: String,
    probe: String,
    timeouts: NodeTimeouts,
    /// Key custody's keys and token, when configured.
    custody: Option<std::sync::Arc<KeyCustody>>,
}

/// Why a call to `/producer-keys` did not give a usable answer. `unusable`: the node answered
/// that key custody cannot work with it (a wrong token, an iotex-core without the endpoint),
/// which no retry changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCallError {
    pub reason: String,
    pub unusable: bool,
}

impl std::fmt::Display for KeyCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl<T: HttpGet> NodeClient<T> {
    /// `admin` is the admin base URL (`http://127.0.0.1:9009`), `probe` the probe base URL
    /// (`http://127.0.0.1:8080`); a trailing slash is accepted.
    pub fn new(transport: T, admin: &str, probe: &str, timeouts: NodeTimeouts) -> Self {
        NodeClient {
            transport,
            admin: admin.trim_end_matches('/').to_string(),
            probe: probe.trim_end_matches('/').to_string(),
            timeouts,
            custody: None,
        }
    }

    /// With key custody: the keys and token `/producer-keys` needs.
    pub fn with_custody(mut self, custody: KeyCustody) -> Self {
        self.custody = Some(std::sync::Arc::new(custody));
        self
    }

    /// Key custody: `PUT /producer-keys` with the operator's key (rule `install_key_last`);
    /// what the node lists after it.
    pub async fn install_key(&self) -> Result<NodeKeys, KeyCallError> {
        let custody = self.custody()?;
        let key = custody.operator.hex().to_owned();
        self.keys_call(HttpMethod::Put, Some(key), self.timeouts.call)
            .await
    }

    /// Key custody: `PUT /producer-keys` with this replica's placeholder (rule
    /// `withdraw_key_when_demoting`), which iotex-core holds, like `activate=false`, until the
    /// slot in progress starts; what the node lists after it.
    pub async fn withdraw_key(&self) -> Result<NodeKeys, KeyCallError> {
        let custody = self.custody()?;
        let key = custody.placeholder.hex().to_owned();
        self.keys_call(HttpMethod::Put, Some(key), self.timeouts.standby)
            .await
    }

    /// Key custody: `GET /producer-keys`, judged against the two addresses.
    pub async fn read_keys(&self) -> Result<NodeKeys, KeyCallError> {
        self.keys_call(HttpMethod::Get, None, self.timeouts.call)
            .await
    }

    fn custody(&self) -> Result<&KeyCustody, KeyCallError> {
        self.custody.as_deref().ok_or_else(|| KeyCallError {
            reason: "key custody is not configured (--producer-key-file)".into(),
            unusable: true,
        })
    }

    async fn keys_call(
        &self,
        method: HttpMethod,
        key: Option<String>,
        timeout: Duration,
    ) -> Result<NodeKeys, KeyCallError> {
        let custody = self.custody()?;
        let json = key.map(|key| serde_json::json!({ "private_keys": [key] }).to_string());
        let request = HttpRequest {
            method,
            url: format!("{}/producer-keys", self.admin),
            bearer: custody.token().to_owned(),
            json,
        };
        let what = format!("{} /producer-keys", method.as_str());
        let failed = |reason: String| KeyCallError {
            reason,
            unusable: false,
        };
        let answer = self
            .transport
            .send(request, timeout)
            .await
            .map_err(failed)?;
        match answer.status {
            200 => {}
            401 => {
                return Err(KeyCallError {
                    reason: format!(
                        "{what} answered HTTP 401: the node refused the admin token; \
                         --admin-token-file must hold the node's IOTEX_ADMIN_TOKEN"
                    ),
                    unusable: true,
                });
            }
            404 | 405 => {
                return Err(KeyCallError {
                    reason: format!(
                        "{what} answered HTTP {}: this node has no /producer-keys; key custody \
                         needs iotex-core v2.5.0 or later",
                        answer.status
                    ),
                    unusable: true,
                });
            }
            _ => accept_200(&what, &answer).map_err(failed)?,
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            operator_addresses: Vec<String>,
        }
        let listed: Listed = serde_json::from_str(answer.body.trim()).map_err(|e| {
            failed(format!(
                "{what} answered an unexpected body {}: {e}",
                excerpt(&answer.body)
            ))
        })?;
        custody.judge(&listed.operator_addresses).map_err(failed)
    }

    /// `GET /ha?activate=true|false`. Success means the node took the command, not that it is
    /// done: only [`NodeClient::read_mode`] tells that. `activate=false` may wait for the slot
    /// in progress to start ([`NodeTimeouts::standby`]).
    pub async fn set_mode(&self, active: bool) -> Result<(), String> {
        let url = format!("{}/ha?activate={active}", self.admin);
        let timeout = if active {
            self.timeouts.call
        } else {
            self.timeouts.standby
        };
        let answer = self.transport.get(&url, timeout).await?;
        accept_200(&format!("/ha?activate={active}"), &answer)
    }

    /// `GET /ha`, which answers `{"active":true}` or `{"active":false}`.
    pub async fn read_mode(&self) -> Result<bool, String> {
        let url = format!("{}/ha", self.admin);
        let answer = self.transport.get(&url, self.timeouts.call).await?;
        accept_200("/ha", &answer)?;
        parse_mode(&answer.body)
    }

    /// `GET /readiness`: ready only on 200 (the node answers 503 `FAIL` until it is ready);
    /// any other status, a redirect, an oversized body, or no answer, is not ready.
    pub async fn probe_ready(&self) -> Result<(), String> {
        let url = format!("{}/readiness", self.probe);
        let answer = self.transport.get(&url, self.timeouts.call).await?;
        accept_200("/readiness", &answer)
    }
}

/// The one answer the node gives when it did what was asked: 200, with a short body.
fn accept_200(what: &str, answer: &HttpAnswer) -> Result<(), String> {
    if answer.body.len() > MAX_BODY {
        return Err(format!(
            "{what} answered HTTP {} with a body over {MAX_BODY} bytes, refused",
            answer.status
        ));
    }
    match answer.status {
        200 => Ok(()),
        300..=399 => Err(format!(
            "{what} answered HTTP {}: redirect refused",
            answer.status
        )),
        status => Err(format!(
            "{what} answered HTTP {status}: {}",
            excerpt(&answer.body)
        )),
    }
}

/// Parses the body of a mode read. Exactly one JSON object with a boolean `active`.
pub fn parse_mode(body: &str) -> Result<bool, String> {
    #[derive(serde::Deserialize)]
    struct Mode {
        active: bool,
    }
    serde_json::from_str::<Mode>(body.trim())
        .map(|m| m.active)
        .map_err(|e| format!("/ha answered an unexpected body {}: {e}", excerpt(body)))
}

/// A short, printable excerpt of a body for error messages.
fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    let mut out: String = trimmed.chars().take(80).collect();
    if trimmed.chars().count() > 80 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Answers from a table; records the URLs asked.
    #[derive(Clone, Default)]
    struct Table {
        answers: Arc<Mutex<HashMap<String, Result<HttpAnswer, String>>>>,
        asked: Arc<Mutex<Vec<String>>>,
        timeouts: Arc<Mutex<Vec<Duration>>>,
    }

    impl Table {
        fn answer(&self, url: &str, status: u16, body: &str) {
            let answer = Ok(HttpAnswer {
                status,
                body: body.into(),
            });
            self.answers.lock().unwrap().insert(url.into(), answer);
        }
    }

    impl HttpGet for Table {
        async fn get(&self, url: &str, timeout: Duration) -> Result<HttpAnswer, String> {
            self.asked.lock().unwrap().push(url.into());
            self.timeouts.lock().unwrap().push(timeout);
            self.answers
                .lock()
                .unwrap()
                .get(url)
                .cloned()
                .unwrap_or_else(|| Err("connection refused".into()))
        }
    }

    fn client(table: &Table) -> NodeClient<Table> {
        NodeClient::new(
            table.clone(),
            "http://127.0.0.1:9009/",
            "http://127.0.0.1:8080",
            NodeTimeouts::of(&elector_core::Timing::default()),
        )
    }

    #[tokio::test]
    async fn activate_false_may_wait_for_the_slot_in_progress() {
        let table = Table::default();
        table.answer("http://127.0.0.1:9009/ha?activate=true", 200, "");
        table.answer("http://127.0.0.1:9009/ha?activate=false", 200, "");
        table.answer("http://127.0.0.1:9009/ha", 200, "{\"active\":false}");
        let node = client(&table);
        node.set_mode(true).await.unwrap();
        node.set_mode(false).await.unwrap();
        node.read_mode().await.unwrap();
        // 300 ms for calls; 2.5 s slot + 300 ms for activate=false.
        assert_eq!(
            *table.timeouts.lock().unwrap(),
            [300, 2800, 300].map(Duration::from_millis)
        );
    }

    #[tokio::test]
    async fn sends_exactly_true_and_false() {
        let table = Table::default();
        table.answer("http://127.0.0.1:9009/ha?activate=true", 200, "");
        table.answer("http://127.0.0.1:9009/ha?activate=false", 200, "");
        let node = client(&table);
        node.set_mode(true).await.unwrap();
        node.set_mode(false).await.unwrap();
        assert_eq!(
            *table.asked.lock().unwrap(),
            vec![
                "http://127.0.0.1:9009/ha?activate=true",
                "http://127.0.0.1:9009/ha?activate=false"
            ]
        );
    }

    #[tokio::test]
    async fn reads_mode_strictly() {
        let table = Table::default();
        let node = client(&table);
        table.answer("http://127.0.0.1:9009/ha", 200, "{\"active\":true}\n");
        assert_eq!(node.read_mode().await, Ok(true));
        table.answer("http://127.0.0.1:9009/ha", 200, "{\"active\":false}\n");
        assert_eq!(node.read_mode().await, Ok(false));
        for garbage in ["", "OK", "{\"active\":\"false\"}", "{}", "<html>"] {
            table.answer("http://127.0.0.1:9009/ha", 200, garbage);
            let err = node.read_mode().await.unwrap_err();
            assert!(err.contains("unexpected body"), "{garbage}: {err}");
        }
        table.answer("http://127.0.0.1:9009/ha", 500, "boom");
        let err = node.read_mode().await.unwrap_err();
        assert!(err.contains("HTTP 500"), "{err}");
    }

    #[tokio::test]
    async fn set_mode_rejects_non_200() {
        let table = Table::default();
        table.answer("http://127.0.0.1:9009/ha?activate=false", 503, "busy");
        let err = client(&table).set_mode(false).await.unwrap_err();
        assert!(err.contains("HTTP 503") && err.contains("busy"), "{err}");
    }

    #[tokio::test]
    async fn readiness_is_200_only() {
        let table = Table::default();
        let node = client(&table);
        assert!(node.probe_ready().await.is_err(), "no answer is not ready");
        table.answer("http://127.0.0.1:8080/readiness", 503, "FAIL");
        assert!(node.probe_ready().await.unwrap_err().contains("HTTP 503"));
        table.answer("http://127.0.0.1:8080/readiness", 200, "OK");
        assert_eq!(node.probe_ready().await, Ok(()));
    }

    #[tokio::test]
    async fn non_200_and_oversized_answers_fail_on_every_call() {
        let table = Table::default();
        let node = client(&table);
        let urls = [
            "http://127.0.0.1:9009/ha",
            "http://127.0.0.1:9009/ha?activate=true",
            "http://127.0.0.1:9009/ha?activate=false",
            "http://127.0.0.1:8080/readiness",
        ];
        // A transport that hands a 3xx on: refused, even with a body that would parse.
        for url in urls {
            table.answer(url, 302, "{\"active\":false}");
        }
        for err in [
            node.read_mode().await.map(|_| ()).unwrap_err(),
            node.set_mode(true).await.unwrap_err(),
            node.set_mode(false).await.unwrap_err(),
            node.probe_ready().await.unwrap_err(),
        ] {
            assert!(err.contains("HTTP 302: redirect refused"), "{err}");
        }
        // 204 or 201 is not 200 either.
        table.answer(urls[0], 204, "{\"active\":false}");
        assert!(node.read_mode().await.unwrap_err().contains("HTTP 204"));
        // A body over the cap, even with 200 and a valid start.
        let long = format!("{{\"active\":false}}{}", " ".repeat(MAX_BODY));
        for url in urls {
            table.answer(url, 200, &long);
        }
        for err in [
            node.read_mode().await.map(|_| ()).unwrap_err(),
            node.set_mode(true).await.unwrap_err(),
            node.set_mode(false).await.unwrap_err(),
            node.probe_ready().await.unwrap_err(),
        ] {
            assert!(err.contains("body over 65536 bytes"), "{err}");
        }
        // Exactly at the cap is accepted.
        let mut at_cap = "{\"active\":false}".to_owned();
        at_cap.push_str(&" ".repeat(MAX_BODY - at_cap.len()));
        table.answer(urls[0], 200, &at_cap);
        assert_eq!(node.read_mode().await, Ok(false));
    }

    /// A one-shot HTTP/1.1 server on 127.0.0.1 for the real transport: it answers each of at
    /// most `connections` connections with `response(port)` once the request head is in, then
    /// closes. Counts the connections it accepted.
    struct Server {
        port: u16,
        accepted: Arc<std::sync::atomic::AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// What the server writes: the head, then `body_repeats` times `body_chunk`.
    struct Canned {
        head: String,
        body_chunk: Vec<u8>,
        body_repeats: usize,
    }

    async fn serve(connections: usize, canned: Canned) -> Server {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let canned = Arc::new(canned);
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let canned = canned.clone();
                tokio::spawn(async move {
                    // Read the request head, at most 8 KiB.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if stream.write_all(canned.head.as_bytes()).await.is_err() {
                        return;
                    }
                    // Stops at the first failed write: the client hung up.
                    for _ in 0..canned.body_repeats {
                        if stream.write_all(&canned.body_chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server {
            port,
            accepted,
            task,
        }
    }

    fn canned(head: &str, body: &str) -> Canned {
        Canned {
            head: head.to_owned(),
            body_chunk: body.as_bytes().to_vec(),
            body_repeats: 1,
        }
    }

    /// A server that says, truthfully or not, that its node is standby.
    async fn standby_node(connections: usize) -> Server {
        let body = "{\"active\":false}\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        serve(connections, canned(&head, body)).await
    }

    fn real_client(admin_port: u16, probe_port: u16) -> NodeClient<ReqwestTransport> {
        NodeClient::new(
            ReqwestTransport::new().unwrap(),
            &format!("http://127.0.0.1:{admin_port}"),
            &format!("http://127.0.0.1:{probe_port}"),
            NodeTimeouts {
                call: Duration::from_secs(5),
                standby: Duration::from_secs(5),
            },
        )
    }

    #[tokio::test]
    async fn the_real_transport_reads_a_plain_answer() {
        let node = standby_node(1).await;
        let client = real_client(node.port, node.port);
        assert_eq!(client.read_mode().await, Ok(false));
    }

    #[tokio::test]
    async fn the_real_transport_refuses_redirects() {
        use std::sync::atomic::Ordering;
        // The other replica's node, standby: a redirect there must never confirm ours.
        let elsewhere = standby_node(8).await;
        let location = format!("http://127.0.0.1:{}/ha", elsewhere.port);
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        let redirecting = serve(8, canned(&head, "")).await;
        let client = real_client(redirecting.port, redirecting.port);

        let err = client.read_mode().await.unwrap_err();
        assert!(
            err.contains(&format!("redirect to {location} refused")),
            "{err}"
        );
        assert!(err.contains("HTTP 302"), "{err}");
        let err = client.set_mode(false).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let err = client.set_mode(true).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let err = client.probe_ready().await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        assert_eq!(redirecting.accepted.load(Ordering::SeqCst), 4);
        assert_eq!(
            elsewhere.accepted.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
    }

    #[tokio::test]
    async fn the_real_transport_caps_bodies() {
        // 64 MiB without a length (read until close), that starts like a valid answer.
        let endless = Canned {
            head: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"active\":false}".to_owned(),
            body_chunk: vec![b' '; 64 * 1024],
            body_repeats: 1024,
        };
        let server = serve(2, endless).await;
        let client = real_client(server.port, server.port);
        let started = std::time::Instant::now();
        let err = client.read_mode().await.unwrap_err();
        assert!(err.contains("body over 65536 bytes"), "{err}");
        let err = client.probe_ready().await.unwrap_err();
        assert!(err.contains("body over 65536 bytes"), "{err}");
        // Refused as soon as the cap is passed, not when the timeout (5 s) ends.
        assert!(started.elapsed() < Duration::from_secs(4), "{started:?}");

        // A declared length over the cap is refused before any of the body is read.
        let declared = canned(
            "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n",
            "{\"active\":false}",
        );
        let server = serve(1, declared).await;
        let client = real_client(server.port, server.port);
        let err = client.set_mode(false).await.unwrap_err();
        assert!(err.contains("body over 65536 bytes"), "{err}");
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "x".repeat(500);
        let err = parse_mode(&body).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }
}
