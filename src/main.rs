//! The `wxcube` binary: parses flags, runs the command, maps the outcome to an exit code.
//!
//! Exit codes: 0 everything asked for was written; 1 the run finished but some work failed (the
//! summary names it); 2 bad usage or configuration, nothing attempted.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use tracing_subscriber::EnvFilter;

use wxcube::cli::{Cli, Command, LogFormat};
use wxcube::config::UsageError;
use wxcube::run::RunError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    init_logging(cli.log_format, cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let usage = e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<RunError>().is_some()
                || e.downcast_ref::<wxcube::write::WriteError>()
                    .is_some_and(|w| matches!(w, wxcube::write::WriteError::Settings(_)));
            eprintln!("error: {}", wxcube::write::store::one_line(&format!("{e:#}")));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Extract(args) => {
            let config = wxcube::config::resolve(&args, chrono::Utc::now())?;
            if args.dry_run {
                let summary = wxcube::dry_run::print_plan(&config, &mut std::io::stdout().lock()).await?;
                println!("{}", summary.to_json_line());
                return Ok(0);
            }
            let summary = wxcube::run::run(config, stop_on_signal()).await?;
            Ok(finish(&summary))
        }
        Command::Simulate(args) => {
            wxcube::simulate::run(args).await?;
            Ok(0)
        }
        Command::Demo(args) => {
            let summary = wxcube::demo::run(&args, &mut std::io::stdout().lock(), stop_on_signal()).await?;
            Ok(finish(&summary))
        }
        Command::Check(args) => wxcube::check::check(&args, &mut std::io::stdout().lock()).await,
        Command::Quota(args) => wxcube::check::quota(&args, &mut std::io::stdout().lock()).await,
        Command::Rebuild(args) => wxcube::rebuild::rebuild(&args, &mut std::io::stdout().lock()).await,
        Command::Tables => {
            print!("{}", wxcube::tables::describe());
            Ok(0)
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

/// Prints the summary as the last line of stdout and returns the exit code.
fn finish(summary: &wxcube::summary::Summary) -> u8 {
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
    summary.exit_code() as u8
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

/// Logs go to stderr, so stdout stays clean for the plan and the summary. Only wxcube's own
/// events are shown by default; the HTTP stack is capped at `warn` whatever RUST_LOG says,
/// because its lower levels print request URLs, and those carry access tokens.
fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "wxcube=info",
        1 => "wxcube=debug",
        _ => "wxcube=trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for noisy in ["reqwest=warn", "hyper=warn", "hyper_util=warn", "h2=warn", "rustls=warn", "object_store=warn"] {
        filter = filter.add_directive(noisy.parse().expect("valid directive"));
    }
    wxcube::progress::enable(format == LogFormat::Text);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| wxcube::progress::LogWriter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}
