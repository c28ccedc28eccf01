//! `--dry-run`: the plan, printed; nothing called, nothing written.

use std::collections::BTreeMap;
use std::io::Write;

use crate::run::RunConfig;
use crate::summary::{Summary, TableSummary};

/// Prints one line per request (`table begin end`, tab-separated) and returns the summary.
pub fn print_plan(config: &RunConfig, out: &mut impl Write) -> std::io::Result<Summary> {
    let plan = config.plan();
    let accounts = config.accounts.len();
    let mut tables = BTreeMap::new();
    for t in &plan.tables {
        for w in &t.windows {
            writeln!(out, "{}\t{}\t{}", t.table.name, w.range.begin(), w.range.end())?;
        }
        tables.insert(
            t.table.name.clone(),
            TableSummary { planned: (t.windows.len() * accounts) as u64, ..Default::default() },
        );
    }
    writeln!(out, "# {} request(s) per account, {} account(s)", plan.requests_per_account(), accounts)?;
    Ok(Summary {
        wxcube: env!("CARGO_PKG_VERSION"),
        status: "ok",
        stopped: false,
        dry_run: true,
        output: config.output.to_string(),
        begin: config.range.begin().to_string(),
        end: config.range.end().to_string(),
        accounts,
        requests: 0,
        rows: 0,
        files_written: 0,
        failures: 0,
        elapsed_ms: 0,
        tables,
        failed_cells: Vec::new(),
    })
}
