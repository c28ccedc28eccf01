//! `wxcube rebuild`: flags → the connector's rebuild of the tables from raw answers.

use std::io::Write;
use std::time::Duration;

use wxcube_connector::rebuild::{RebuildRequest, rebuild as rebuild_tables};
use wxcube_connector::write::store::OutputSpec;
use wxcube_registry as registry;

use crate::cli::RebuildArgs;
use crate::config::UsageError;
use crate::exit::{Done, Failure};

pub async fn rebuild(args: &RebuildArgs, out: &mut impl Write) -> Result<Done, Failure> {
    let tables = registry::select(&args.tables).map_err(|e| UsageError(format!("--tables: {e}")))?;
    let output = OutputSpec::parse(&args.output).map_err(UsageError)?;
    let request = RebuildRequest {
        output,
        tables,
        lease: Duration::from_secs(args.lease_secs),
        lease_wait: Duration::from_secs(args.lease_wait_secs),
        format: args.format.map(Into::into),
    };
    let unusable = rebuild_tables(request, out).await?;
    Ok(if unusable == 0 { Done::Complete } else { Done::Partial })
}
