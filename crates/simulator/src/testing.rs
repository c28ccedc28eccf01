//! Test helpers: a simulator on a pinned day and a small HTTP client for it.

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::accounts::{demo_appid, demo_component_appid, demo_component_secret, demo_secret, demo_verify_ticket};
use super::{Clock, RunningSimulator, SimConfig, Simulator};
use crate::calendar::parse_day as parse_date;

/// The pinned day of most tests: yesterday is 2024-03-11, a Monday.
pub const TODAY: &str = "2024-03-12";

pub fn d(s: &str) -> NaiveDate {
    parse_date(s).unwrap()
}

pub fn config() -> SimConfig {
    SimConfig { clock: Clock::noon_on(d(TODAY)), ..SimConfig::default() }
}

pub struct Client {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn start(config: SimConfig) -> Self {
        // reqwest refuses to build a client without a TLS crypto provider, even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { sim: Simulator::start(config).await.unwrap(), http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Value {
        let response = self.http.post(self.url(path)).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    pub async fn stable_token(&self, account: usize, force_refresh: bool) -> Value {
        let body = json!({"grant_type": "client_credential", "appid": demo_appid(account),
            "secret": demo_secret(account), "force_refresh": force_refresh});
        self.post("/cgi-bin/stable_token", body.to_string()).await
    }

    pub async fn token(&self, account: usize) -> String {
        let answer = self.stable_token(account, false).await;
        answer["access_token"].as_str().unwrap().to_string()
    }

    pub async fn classic_token(&self, account: usize) -> Value {
        let query =
            format!("grant_type=client_credential&appid={}&secret={}", demo_appid(account), demo_secret(account));
        self.get(&format!("/cgi-bin/token?{query}")).await
    }

    /// `api_component_token` with the demo platform's credentials: the whole answer.
    pub async fn component_token(&self) -> Value {
        let body = json!({"component_appid": demo_component_appid(), "component_appsecret": demo_component_secret(),
            "component_verify_ticket": demo_verify_ticket()});
        self.post("/cgi-bin/component/api_component_token", body.to_string()).await
    }

    /// A component token of the demo platform.
    pub async fn component(&self) -> String {
        self.component_token().await["component_access_token"].as_str().unwrap().to_string()
    }

    /// `api_authorizer_token` for demo account `account` with `refresh_token`: the whole answer.
    pub async fn authorizer_token(&self, component_token: &str, account: usize, refresh_token: &str) -> Value {
        let body = json!({"component_appid": demo_component_appid(), "authorizer_appid": demo_appid(account),
            "authorizer_refresh_token": refresh_token});
        self.post(
            &format!("/cgi-bin/component/api_authorizer_token?component_access_token={component_token}"),
            body.to_string(),
        )
        .await
    }

    /// `quota/get` for `cgi_path`: the whole answer.
    pub async fn quota(&self, token: &str, cgi_path: &str) -> Value {
        let body = json!({"cgi_path": cgi_path}).to_string();
        self.post(&format!("/cgi-bin/openapi/quota/get?access_token={token}"), body).await
    }

    pub async fn datacube(&self, endpoint: &str, token: &str, begin: &str, end: &str) -> Value {
        let body = json!({"begin_date": begin, "end_date": end}).to_string();
        self.post(&format!("/datacube/{endpoint}?access_token={token}"), body).await
    }

    /// A datacube request whatever comes back: the status, the content type and the body, or
    /// the error of a broken connection.
    pub async fn raw_datacube(&self, endpoint: &str, token: &str, begin: &str, end: &str) -> reqwest::Result<Raw> {
        let body = json!({"begin_date": begin, "end_date": end}).to_string();
        let url = self.url(&format!("/datacube/{endpoint}?access_token={token}"));
        let response = self.http.post(url).body(body).send().await?;
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Raw { status, content_type, body: response.bytes().await?.to_vec() })
    }
}

/// An answer as it came over the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.body)
    }
}

/// Asserts `answer` is the error `code` with the real service's message shape.
#[track_caller]
pub fn assert_error(answer: &Value, code: i64, text: &str) {
    assert_eq!(answer["errcode"], code, "{answer}");
    let msg = answer["errmsg"].as_str().unwrap();
    let (head, rid) = msg.split_once(" rid: ").unwrap_or_else(|| panic!("no rid in {msg}"));
    assert_eq!(head, text);
    assert_eq!(rid.len(), 26, "{rid}");
    assert!(rid.split('-').all(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_hexdigit())), "{rid}");
}
