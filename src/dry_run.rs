//! `--dry-run`: the plan, printed; nothing called, nothing written.

use std::io::Write;

use crate::run::{self, RunConfig, RunError};
use crate::summary::Summary;

/// Prints one line per request (`table<TAB>begin<TAB>end<TAB>accounts`) and returns the summary.
pub async fn print_plan(config: &RunConfig, out: &mut impl Write) -> anyhow::Result<Summary> {
    let (units, summary) = run::dry_run(config).await.map_err(|e: RunError| anyhow::Error::new(e))?;
    for u in &units {
        writeln!(out, "{}\t{}\t{}\t{}", u.table.name, u.window.range.begin(), u.window.range.end(), u.members.len())?;
    }
    let requests: usize = units.iter().map(|u| u.members.len()).sum();
    writeln!(out, "# {requests} request(s) for {} account(s)", summary.accounts)?;
    Ok(summary)
}
