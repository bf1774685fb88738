//! `sora-sim`: runs the Sora emulator of `sora_legacy_shim::sim` on a TCP port.
//!
//! Prints exactly one line to stdout, `listening on http://IP:PORT`, once the port is bound;
//! logs go to stderr. Stops on SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sora_legacy_shim::server::shutdown_signal;
use sora_legacy_shim::sim::{self, DEFAULT_NO_SESSION_ERROR, SimOptions};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Emulates the session-based Sora API, its webhooks and a control plane under /sim/.
#[derive(Debug, Parser)]
#[command(name = "sora-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: String,
    /// URL that receives session.created / session.destroyed.
    #[arg(long, value_name = "URL", value_parser = parse_webhook_url)]
    session_webhook_url: Option<String>,
    /// URL that receives archive.available / recording.report.
    #[arg(long, value_name = "URL", value_parser = parse_webhook_url)]
    event_webhook_url: Option<String>,
    /// Seconds a session outlives its last connection (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_seconds)]
    session_linger: Duration,
    /// Error name answered when a channel has no session.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NO_SESSION_ERROR)]
    no_session_error: String,
    /// Also serve the legacy recording API (Sora_20161101.*) with legacy Sora's semantics, as an oracle.
    #[arg(long)]
    legacy: bool,
    /// Send these HTTP Basic credentials (USER:PASSWORD) with every webhook, as Sora can.
    #[arg(long, value_name = "USER:PASSWORD", value_parser = parse_basic_auth)]
    webhook_basic_auth: Option<String>,
    /// Log filter (e.g. `info`, `debug`, `sora_legacy_shim=trace`); defaults to the RUST_LOG variable, else info.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` must be a finite, non-negative number of seconds"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match &args.log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("sora-sim: bad log filter: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let listener = match TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("sora-sim: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("sora-sim: cannot read the bound address: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on http://{address}").and_then(|()| stdout.flush()).is_err() {
        eprintln!("sora-sim: cannot write to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);

    let options = SimOptions {
        session_webhook_url: args.session_webhook_url,
        event_webhook_url: args.event_webhook_url,
        session_linger: args.session_linger,
        no_session_error: args.no_session_error,
        legacy: args.legacy,
        webhook_basic_auth: args.webhook_basic_auth,
    };
    sim::run(listener, options, shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// A webhook URL the emulator can call: absolute `http://`.
fn parse_webhook_url(text: &str) -> Result<String, String> {
    match text.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => Ok(text.to_owned()),
        _ => Err("expected an absolute http:// URL".to_owned()),
    }
}

/// `USER:PASSWORD`.
fn parse_basic_auth(text: &str) -> Result<String, String> {
    if text.contains(':') { Ok(text.to_owned()) } else { Err("expected USER:PASSWORD".to_owned()) }
}
