//! wxcube's connector: WeChat datacube answers to date-partitioned Parquet (or Delta Lake
//! tables of it), on local disk or S3.
//!
//! The pipeline, in the order a run goes through it:
//!
//! ```text
//!  plan ──► extract ──► normalize ──► write ──► state / summary
//! ```
//!
//! - [`plan`] — a date range and the registry's tables → the fewest requests;
//! - [`extract`] — the HTTP loop: tokens, retries, error classes, cancellation;
//! - [`answer`] — reading an API answer (its envelope and rows), for extract and normalize;
//! - [`normalize`] — rows typed, validated and labelled → Arrow batches ([`schema`]);
//! - [`write`] — batches → Parquet files through `object_store`: merge on write, conditional
//!   updates, group commit, leases, incremental state, raw answers, and the Delta log
//!   (`write::delta`);
//! - [`run`] — drives the stages window by window for every account, and builds the
//!   [`summary`]; [`rebuild`] derives the tables again from raw answers.
//!
//! Support: [`account`] (appids, credentials and secrets that never print), [`dates`]
//! (Beijing days, ranges), [`shard`], [`progress`], [`tls`], [`text`]. The tables themselves
//! are data, in the `wxcube-registry` crate.

pub mod account;
pub mod answer;
pub mod dates;
pub mod extract;
pub mod normalize;
pub mod plan;
pub mod progress;
pub mod rebuild;
pub mod run;
pub mod schema;
pub mod shard;
pub mod summary;
pub mod text;
pub mod tls;
pub mod write;

pub use wxcube_registry as registry;
