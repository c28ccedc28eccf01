//! `--dry-run`: the plan, printed; nothing called, nothing written.

use std::io::Write;

use wxcube_connector::run::{self, RunConfig};
use wxcube_connector::summary::Summary;

use crate::exit::Failure;

/// Prints one line per request (`table<TAB>begin<TAB>end<TAB>accounts`) and returns the summary.
pub async fn print_plan(config: &RunConfig, out: &mut impl Write) -> Result<Summary, Failure> {
    let (units, summary) = run::dry_run(config).await?;
    for u in &units {
        writeln!(out, "{}\t{}\t{}\t{}", u.table.name, u.window.range.begin(), u.window.range.end(), u.members.len())?;
    }
    let requests: usize = units.iter().map(|u| u.members.len()).sum();
    writeln!(out, "# {requests} request(s) for {} account(s)", summary.accounts)?;
    Ok(summary)
}
