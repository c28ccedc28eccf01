//! The `wxcube` binary: flags, configuration and commands, over the connector's pipeline
//! (`wxcube-connector`) and the simulator (`wxcube-simulator`).
//!
//! Map of the binary:
//! - `cli` — the flags of every command;
//! - `config` — flags and the accounts file (`accounts_file`) → a validated run, or one
//!   [`config::UsageError`] line;
//! - `commands` — what each subcommand does beyond a run: check and quota, demo, dry run,
//!   rebuild, tables;
//! - `exit` — the one place that turns an outcome into an exit code and an error line.

mod accounts_file;
mod cli;
mod commands;
mod config;
mod exit;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use cli::{Cli, Command, LogFormat};
use exit::{Done, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    init_logging(cli.log_format, cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    match runtime.block_on(dispatch(cli)) {
        Ok(done) => ExitCode::from(done.exit_code()),
        Err(failure) => {
            eprintln!("{}", failure.line());
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Done, Failure> {
    match cli.command {
        Command::Extract(args) => {
            let config = config::resolve(&args, chrono::Utc::now())?;
            if args.dry_run {
                let summary = commands::dry_run::print_plan(&config, &mut std::io::stdout().lock()).await?;
                println!("{}", summary.to_json_line());
                return Ok(Done::Complete);
            }
            let summary = wxcube_connector::run::run(config, stop_on_signal()).await?;
            Ok(finish(&summary))
        }
        Command::Simulate(args) => {
            wxcube_simulator::run(args).await.map_err(|e| Failure::Simulator(format!("{e:#}")))?;
            Ok(Done::Complete)
        }
        Command::Demo(args) => {
            let summary = commands::demo::run(&args, &mut std::io::stdout().lock(), stop_on_signal()).await?;
            Ok(finish(&summary))
        }
        Command::Check(args) => commands::check::check(&args, &mut std::io::stdout().lock()).await,
        Command::Quota(args) => commands::check::quota(&args, &mut std::io::stdout().lock()).await,
        Command::Rebuild(args) => commands::rebuild::rebuild(&args, &mut std::io::stdout().lock()).await,
        Command::Tables => {
            print!("{}", commands::tables::describe());
            Ok(Done::Complete)
        }
    }
}

/// A flag that turns true on the first SIGTERM or Ctrl-C (Airflow's `on_kill` sends SIGTERM to
/// the process group): the run then sends no new request, lets writes under way finish, and
/// prints its summary. A second signal exits at once; every file is still whole, since each
/// appears atomically.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
        let mut next = async || {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        };
        let first = next().await;
        tracing::warn!("{first} received: stopping; no new requests, writes under way finish");
        tx.send_replace(true);
        let second = next().await;
        eprintln!("error: {second} received again: exiting now; files written so far are complete");
        std::process::exit(1);
    });
    rx
}

/// Prints the summary as the last line of stdout and says whether everything was written.
fn finish(summary: &wxcube_connector::summary::Summary) -> Done {
    if summary.stopped {
        eprintln!(
            "error: the run was stopped before it finished; {} cell(s) were not written, and a re-run fills them",
            summary.failures
        );
    } else if summary.failures > 0 {
        let record = summary.run_record.as_deref().map(|r| format!(" (every one in {r})")).unwrap_or_default();
        eprintln!(
            "error: {} cell(s) failed and were not written; the summary's `failed` groups them{record}, and a re-run fills them",
            summary.failures
        );
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", summary.to_json_line());
    let _ = out.flush();
    if summary.failures == 0 && !summary.stopped { Done::Complete } else { Done::Partial }
}

/// Reports a flag error as one line (clap's own rendering spans several) with exit code 2;
/// `--help` and `--version` print as usual.
fn flag_error(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let text: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let line = text.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("error: {line} (see wxcube --help)");
    ExitCode::from(2)
}

/// The HTTP stack: its lower log levels print request URLs, and those carry access tokens.
const HTTP_STACK: [&str; 6] = ["reqwest", "hyper", "hyper_util", "h2", "rustls", "object_store"];

/// Logs go to stderr, so stdout stays clean for the plan and the summary. Only wxcube's own
/// events are shown by default; `RUST_LOG` (`target=level,…` or a bare level) replaces that,
/// except that the HTTP stack stays capped at `warn` whatever it says (see [`HTTP_STACK`]).
///
/// A target filter rather than `tracing-subscriber`'s `EnvFilter`: the same `RUST_LOG`
/// syntax without span and field filters, and without the regex crates `EnvFilter` pulls in,
/// 23 s of CPU in a new user's first build (README, "Performance").
fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "wxcube=info",
        1 => "wxcube=debug",
        _ => "wxcube=trace",
    };
    let asked = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty()).map(|s| s.parse::<Targets>());
    let filter = match &asked {
        Some(Ok(targets)) => log_filter(targets),
        _ => log_filter(&default.parse().expect("valid directive")),
    };
    wxcube_connector::progress::enable(format == LogFormat::Text);
    // Every level reaches the filter, which alone decides.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(|| wxcube_connector::progress::LogWriter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).finish().with(filter).init(),
        LogFormat::Text => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).finish().with(filter).init()
        }
    }
    if let Some(Err(e)) = asked {
        tracing::warn!(
            "RUST_LOG is not a list of target=level directives ({e}); logging at the default level instead. \
             Set it like RUST_LOG=wxcube=debug,wxcube_connector::write=trace"
        );
    }
}

/// What `asked` enables, with every target of the HTTP stack (and any finer target within
/// it) replaced by a cap at `warn`.
fn log_filter(asked: &Targets) -> Targets {
    let in_http_stack = |target: &str| {
        HTTP_STACK.iter().any(|c| target == *c || target.strip_prefix(c).is_some_and(|r| r.starts_with("::")))
    };
    let mut filter = Targets::new()
        .with_targets(asked.iter().filter(|(target, _)| !in_http_stack(target)).map(|(t, l)| (t.to_string(), l)));
    if let Some(level) = asked.default_level() {
        filter = filter.with_default(level);
    }
    filter.with_targets(HTTP_STACK.map(|c| (c, LevelFilter::WARN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_is_followed_except_that_the_http_stack_stays_at_warn() {
        let asked: Targets =
            "debug,wxcube=trace,hyper_util::client::legacy=trace,reqwest=debug,tokio=off".parse().unwrap();
        let filter = log_filter(&asked);
        assert!(filter.would_enable("wxcube_connector::run", &Level::TRACE));
        assert!(filter.would_enable("axum::serve", &Level::DEBUG), "the bare level is the default");
        assert!(!filter.would_enable("tokio::task", &Level::ERROR));
        for target in ["hyper_util::client::legacy::pool", "reqwest::connect", "h2::codec", "object_store::aws"] {
            assert!(!filter.would_enable(target, &Level::INFO), "{target} logs below warn");
            assert!(filter.would_enable(target, &Level::WARN), "{target} warnings are kept");
        }
        // A crate whose name merely starts like one of the HTTP stack's is the user's to set.
        let filter = log_filter(&"hyperloop=trace".parse().unwrap());
        assert!(filter.would_enable("hyperloop", &Level::TRACE));
    }
}
