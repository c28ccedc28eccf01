//! Fault injection: where the simulator misbehaves on purpose.
//!
//! Every request consults the current [`Faults`] once, at a fixed point: token requests before
//! their credentials are checked, datacube requests after the token (so a fault knows the
//! account) and before the dates. A fault may answer in place of the real handler — an
//! errcode such as -1, 45009, 45011 or 48001, an HTTP 5xx page, a truncated body — or, in a
//! later version, delay it. The set is plain data: it comes from command-line flags, from
//! [`super::SimConfig::faults`], and at run time from `POST /_sim/faults` (read back with
//! `GET /_sim/faults`) or [`super::RunningSimulator::set_faults`].
//!
//! No fault is defined yet: the structure is in place so that adding one touches this file and
//! its flags only.

use axum::response::Response;
use serde::{Deserialize, Serialize};

/// The faults to inject. The default injects none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {}

impl Faults {
    /// The answer to a token request (`kind` is `stable_token` or `token`) if a fault strikes.
    pub(crate) fn on_token(&self, _kind: &str) -> Option<Response> {
        None
    }

    /// The answer to a datacube request of `appid` to `endpoint` if a fault strikes.
    pub(crate) fn on_datacube(&self, _appid: &str, _endpoint: &str) -> Option<Response> {
        None
    }
}
