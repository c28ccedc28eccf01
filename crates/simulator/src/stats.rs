//! What the simulator was asked, for tests to check a run against its plan.
//!
//! Served as JSON at `GET /_sim/stats` (and cleared by `DELETE /_sim/stats`), and available in
//! process through [`super::RunningSimulator::stats`]. The same type serialises and parses, so
//! a test of the binary can read the endpoint into it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How many datacube requests are kept in `recent`; older ones are counted in `recent_dropped`.
/// Enough for a benchmark of 1 000 accounts × a month × every table.
pub const RECENT_CAPACITY: usize = 200_000;

/// Counters since the simulator started (or since the last reset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every request to a known datacube endpoint, whatever its answer.
    pub datacube_requests: u64,
    /// The same, per endpoint (`getupstreammsg`, …).
    pub per_endpoint: BTreeMap<String, u64>,
    /// Calls to the token endpoints, whatever their answer.
    pub token_calls: TokenCalls,
    /// Calls to `/cgi-bin/openapi/quota/get`, whatever their answer.
    #[serde(default)]
    pub quota_requests: u64,
    /// The latest datacube requests, oldest first.
    pub recent: Vec<DatacubeRequest>,
    /// Requests that no longer fit in `recent`.
    pub recent_dropped: u64,
    /// The latest `api_authorizer_token` calls, oldest first (at most [`RECENT_CAPACITY`]).
    #[serde(default)]
    pub authorizer_requests: Vec<AuthorizerRequest>,
    /// Injected faults that struck, by name: each triggered kind (`busy`, `http_5xx`, …, see
    /// [`super::faults::FaultKind`]), and `latency` (a delayed answer), `token_expired` (42001
    /// from `token_expires_after`), `token_not_latest` (40001 for a token a newer one
    /// replaced), `unauthorized` (48001), `daily_quota` (45009), `per_minute_limit` (45011),
    /// `max_span` (61501 for a window the registry's span allows), and the faults of
    /// `api_authorizer_token` calls (`authorizer_lost`, `authorizer_busy`,
    /// `refresh_used_elsewhere`).
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
}

/// Calls per token endpoint, whatever their answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCalls {
    /// `POST /cgi-bin/stable_token`.
    pub stable_token: u64,
    /// `GET /cgi-bin/token`.
    pub token: u64,
    /// `POST /cgi-bin/component/api_component_token`.
    #[serde(default)]
    pub component_token: u64,
    /// `POST /cgi-bin/component/api_authorizer_token`.
    #[serde(default)]
    pub authorizer_token: u64,
}

/// One datacube request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatacubeRequest {
    /// The token's account; `None` when the token was missing or rejected.
    pub appid: Option<String>,
    pub endpoint: String,
    /// `begin_date` / `end_date` as sent, if they were strings.
    pub begin: Option<String>,
    pub end: Option<String>,
    /// The answer's errcode: 0 for a list, and -1 for an answer an envelope fault replaced
    /// (`busy`, but also `http_5xx`, `bad_json`, `drop`, `huge`, `deep` and `absurd`).
    pub errcode: i64,
    /// Rows in the answered list (0 when a fault replaced it).
    pub rows: usize,
    /// The answer's HTTP status (200 unless `http_5xx` struck).
    #[serde(default = "ok")]
    pub status: u16,
    /// The faults that struck this request, by name, in the order they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

/// One `api_authorizer_token` call as the simulator saw it. Never a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerRequest {
    /// The account it asked for, once the call got that far: a demo account, with a good
    /// component token and body.
    pub appid: Option<String>,
    /// The answer's errcode: 0 when served (also when `authorizer_lost` then cut the answer).
    pub errcode: i64,
    /// The refresh token presented had already been exchanged (rotated away): a client sending
    /// a dead refresh token again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale_refresh_token: bool,
    /// The faults that struck this call, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

fn ok() -> u16 {
    200
}

/// The live counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    stats: SimStats,
    recent: VecDeque<DatacubeRequest>,
    authorizer: VecDeque<AuthorizerRequest>,
}

impl Recorder {
    pub fn datacube(&mut self, request: DatacubeRequest) {
        self.stats.datacube_requests += 1;
        *self.stats.per_endpoint.entry(request.endpoint.clone()).or_default() += 1;
        for fault in &request.faults {
            *self.stats.faults.entry(fault.clone()).or_default() += 1;
        }
        if self.recent.len() == RECENT_CAPACITY {
            self.recent.pop_front();
            self.stats.recent_dropped += 1;
        }
        self.recent.push_back(request);
    }

    pub fn stable_token(&mut self) {
        self.stats.token_calls.stable_token += 1;
    }

    pub fn token(&mut self) {
        self.stats.token_calls.token += 1;
    }

    pub fn component_token(&mut self) {
        self.stats.token_calls.component_token += 1;
    }

    /// An `api_authorizer_token` call arrived.
    pub fn authorizer_token(&mut self) {
        self.stats.token_calls.authorizer_token += 1;
    }

    /// An `api_authorizer_token` call was answered.
    pub fn authorizer(&mut self, request: AuthorizerRequest) {
        for fault in &request.faults {
            *self.stats.faults.entry(fault.clone()).or_default() += 1;
        }
        if self.authorizer.len() == RECENT_CAPACITY {
            self.authorizer.pop_front();
        }
        self.authorizer.push_back(request);
    }

    pub fn quota(&mut self) {
        self.stats.quota_requests += 1;
    }

    pub fn snapshot(&self) -> SimStats {
        SimStats {
            recent: self.recent.iter().cloned().collect(),
            authorizer_requests: self.authorizer.iter().cloned().collect(),
            ..self.stats.clone()
        }
    }

    pub fn reset(&mut self) {
        *self = Recorder::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_recent_requests() {
        let mut r = Recorder::default();
        let request = |endpoint: &str| DatacubeRequest {
            appid: Some("wxa".into()),
            endpoint: endpoint.into(),
            begin: Some("2024-01-01".into()),
            end: Some("2024-01-01".into()),
            errcode: 0,
            rows: 3,
            status: 200,
            faults: Vec::new(),
        };
        r.datacube(request("getupstreammsg"));
        r.datacube(DatacubeRequest { faults: vec!["busy".into()], errcode: -1, ..request("getupstreammsg") });
        r.datacube(request("getupstreammsghour"));
        r.stable_token();
        r.authorizer_token();
        r.authorizer_token();
        r.component_token();
        r.authorizer(AuthorizerRequest {
            appid: None,
            errcode: 61023,
            stale_refresh_token: true,
            faults: vec!["refresh_used_elsewhere".into()],
        });
        r.quota();
        let s = r.snapshot();
        assert_eq!(s.datacube_requests, 3);
        assert_eq!(s.per_endpoint["getupstreammsg"], 2);
        assert_eq!(s.token_calls, TokenCalls { stable_token: 1, token: 0, component_token: 1, authorizer_token: 2 });
        assert_eq!(s.quota_requests, 1);
        assert_eq!(s.recent.len(), 3);
        assert_eq!(s.faults, BTreeMap::from([("busy".into(), 1), ("refresh_used_elsewhere".into(), 1)]));
        assert_eq!(s.authorizer_requests.len(), 1);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SimStats>(&json).unwrap(), s);
        // Stats written before the platform endpoints existed still parse.
        let old = r#"{"datacube_requests":0,"per_endpoint":{},"token_calls":{"stable_token":2,"token":1},"recent":[],"recent_dropped":0}"#;
        assert_eq!(serde_json::from_str::<SimStats>(old).unwrap().token_calls.stable_token, 2);
        r.reset();
        assert_eq!(r.snapshot(), SimStats::default());
    }
}
