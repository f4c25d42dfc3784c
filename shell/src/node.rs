//! The node adapter: the iotex node's `/ha` admin endpoint and its readiness probe.
//!
//! The node never reports an error on `/ha`: it answers 200 to anything, ignores values other
//! than `true`/`false`, and only a read without parameters tells the mode. So we send exactly
//! `activate=true|false`, accept only 200, and parse reads strictly. Anything else is a
//! failure with a reason, never a panic.

use std::future::Future;
use std::time::Duration;

/// What an HTTP GET returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// The seam under the node adapter: one HTTP GET with a hard timeout. Production uses
/// [`ReqwestTransport`]; the simulation runs hyper over turmoil's network.
pub trait HttpGet: Clone + Send + Sync + 'static {
    /// GET `url`; `Err` carries why no answer came (refused, reset, timed out).
    fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<HttpAnswer, String>> + Send;
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
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(ReqwestTransport { client })
    }
}

impl HttpGet for ReqwestTransport {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpAnswer, String> {
        let call = async {
            let response = self.client.get(url).send().await.map_err(describe)?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(describe)?;
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

/// The node's admin and probe endpoints.
#[derive(Clone)]
pub struct NodeClient<T> {
    transport: T,
    admin: String,
    probe: String,
    timeout: Duration,
}

impl<T: HttpGet> NodeClient<T> {
    /// `admin` is the admin base URL (`http://127.0.0.1:9009`), `probe` the probe base URL
    /// (`http://127.0.0.1:8080`); a trailing slash is accepted.
    pub fn new(transport: T, admin: &str, probe: &str, timeout: Duration) -> Self {
        NodeClient {
            transport,
            admin: admin.trim_end_matches('/').to_string(),
            probe: probe.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    /// `GET /ha?activate=true|false`. Success means the node took the command, not that it is
    /// done: only [`NodeClient::read_mode`] tells that.
    pub async fn set_mode(&self, active: bool) -> Result<(), String> {
        let url = format!("{}/ha?activate={active}", self.admin);
        let answer = self.transport.get(&url, self.timeout).await?;
        if answer.status != 200 {
            return Err(format!(
                "/ha?activate={active} answered HTTP {}: {}",
                answer.status,
                excerpt(&answer.body)
            ));
        }
        Ok(())
    }

    /// `GET /ha`, which answers `{"active":true}` or `{"active":false}`.
    pub async fn read_mode(&self) -> Result<bool, String> {
        let url = format!("{}/ha", self.admin);
        let answer = self.transport.get(&url, self.timeout).await?;
        if answer.status != 200 {
            return Err(format!(
                "/ha answered HTTP {}: {}",
                answer.status,
                excerpt(&answer.body)
            ));
        }
        parse_mode(&answer.body)
    }

    /// `GET /readiness`: ready only on 200; any other status, or no answer, is not ready.
    pub async fn probe_ready(&self) -> Result<(), String> {
        let url = format!("{}/readiness", self.probe);
        let answer = self.transport.get(&url, self.timeout).await?;
        if answer.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "/readiness answered HTTP {}: {}",
                answer.status,
                excerpt(&answer.body)
            ))
        }
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
        async fn get(&self, url: &str, _timeout: Duration) -> Result<HttpAnswer, String> {
            self.asked.lock().unwrap().push(url.into());
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
            Duration::from_millis(300),
        )
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

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "x".repeat(500);
        let err = parse_mode(&body).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }
}
