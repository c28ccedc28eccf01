//! The HTTP client every API call goes through.
//!
//! It owns the one place where URLs carrying credentials are built, and makes sure none of them
//! leaks: reqwest's errors print the full URL (with `access_token=` or `secret=` in the query),
//! so they are stripped of it here and described by method and path only. Bodies are read with
//! a size cap so a runaway response cannot exhaust memory.

use std::error::Error as _;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Url;

use super::errors::CallError;
use crate::text::truncate;

/// The largest response body accepted. The biggest legitimate answer (a 15-day distribution or
/// a month of weeks) is a few kilobytes; anything near this is broken or hostile.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
}

impl ApiClient {
    /// `base` is the API root, e.g. `https://api.weixin.qq.com`; `timeout` bounds each request
    /// from connect to the last body byte.
    pub fn new(base: Url, timeout: Duration) -> Result<Self, String> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wxcube/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
        Ok(Self { http, base })
    }

    /// The API root as given, for messages (it never carries credentials).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// POSTs `body` as JSON to `path`; `query` may carry credentials and is never printed.
    pub async fn post_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Bytes, CallError> {
        let request = self.http.post(self.url(path, query)).json(body);
        self.send("POST", path, request).await
    }

    /// GETs `path`; `query` may carry credentials and is never printed.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Bytes, CallError> {
        let request = self.http.get(self.url(path, query));
        self.send("GET", path, request).await
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `https://host/path`, with no query: safe to print.
    pub fn describe(&self, method: &str, path: &str) -> String {
        format!("{method} {}", self.url(path, &[]))
    }

    async fn send(&self, method: &str, path: &str, request: reqwest::RequestBuilder) -> Result<Bytes, CallError> {
        let what = || self.describe(method, path);
        let mut response = request.send().await.map_err(|e| {
            // Refused or never established: a caller may resend what must not be sent twice.
            let not_sent = e.is_connect();
            let reason = format!("{}: {}", what(), transport_reason(e));
            if not_sent { CallError::NotSent(reason) } else { CallError::Transport(reason) }
        })?;
        let status = response.status();
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CallError::Transport(format!("{}: reading the body: {}", what(), transport_reason(e))))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(CallError::Body(format!("{}: body larger than {} MiB", what(), MAX_BODY_BYTES >> 20)));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(CallError::Http {
                status: status.as_u16(),
                snippet: truncate(&String::from_utf8_lossy(&body), 80),
            });
        }
        Ok(body.freeze())
    }
}

/// Describes a reqwest error by its causes, never its URL.
fn transport_reason(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_never_show_the_query() {
        // Port 9 (discard) on loopback is closed on any sane test machine.
        let api = ApiClient::new(Url::parse("http://127.0.0.1:9/").unwrap(), Duration::from_secs(2)).unwrap();
        let err = api.get("/cgi-bin/token", &[("secret", "s3cr3t-value")]).await.unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("GET http://127.0.0.1:9/cgi-bin/token: "), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(matches!(err, CallError::NotSent(_)), "a refused connection sent nothing: {err:?}");
    }

    #[tokio::test]
    async fn a_connection_cut_after_the_request_may_have_been_sent() {
        // A server that reads the request, then hangs up without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
        });
        let api = ApiClient::new(base, Duration::from_secs(5)).unwrap();
        let err = api.post_json("/x", &[("secret", "s3cr3t-value")], &serde_json::json!({})).await.unwrap_err();
        assert!(matches!(err, CallError::Transport(_)), "{err:?}");
        assert!(!err.to_string().contains("s3cr3t"));
        server.await.unwrap();
    }

    #[test]
    fn urls_join_the_base_path() {
        let api = ApiClient::new(Url::parse("http://127.0.0.1:1/proxy/").unwrap(), Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url("/datacube/x", &[("access_token", "t")]).as_str(),
            "http://127.0.0.1:1/proxy/datacube/x?access_token=t"
        );
        assert_eq!(api.describe("POST", "/datacube/x"), "POST http://127.0.0.1:1/proxy/datacube/x");
    }
}
