//! Command line of `sora-legacy-shim`: `run` (the default) serves the shim, `check` validates the
//! configuration and `mappings/` and exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{Config, upstream_base};
use crate::mappings::Mappings;
use crate::server::{ServeOptions, serve, shutdown_signal, stack};
use crate::sim::{SimOptions, run as run_sim};
use crate::store::sqlite::SqliteStore;
use crate::upstream::Upstream;

/// A drop-in proxy that answers Sora's removed legacy recording API on top of the session API.
#[derive(Debug, Parser)]
#[command(name = "sora-legacy-shim", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (defaults < file < SORA_SHIM__* environment < flags).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:3000.
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Base URL of Sora's API, e.g. http://127.0.0.1:3001. Unset: the bundled emulator is started.
    #[arg(long, global = true, value_name = "URL")]
    upstream: Option<String>,
    /// SQLite file holding the orders.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Directory with legacy.toml, errors.toml and upstream.toml.
    #[arg(long, global = true, value_name = "DIR")]
    mappings: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the shim (the default).
    Run,
    /// Validate the configuration and mappings, print what would be used, and exit.
    Check,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: configuration: {message}");
            return ExitCode::from(2);
        }
    };
    let mappings = match load_mappings(&config) {
        Ok(mappings) => mappings,
        Err(message) => {
            eprintln!("error: mappings: {message}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&config, &mappings),
        Command::Run => {
            init_tracing(&config.log.level);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
            match runtime {
                Ok(runtime) => match runtime.block_on(run(config, mappings)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => {
                        eprintln!("error: {message}");
                        ExitCode::FAILURE
                    }
                },
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut overrides: Vec<(&str, String)> = Vec::new();
    if let Some(listen) = &cli.listen {
        overrides.push(("listen", listen.clone()));
    }
    if let Some(upstream) = &cli.upstream {
        overrides.push(("upstream.url", upstream.clone()));
    }
    if let Some(store) = &cli.store {
        overrides.push(("store.path", store.display().to_string()));
    }
    if let Some(mappings) = &cli.mappings {
        overrides.push(("mappings_dir", mappings.display().to_string()));
    }
    Config::load(cli.config.as_deref(), None, &overrides).map_err(|error| error.to_string())
}

/// The configured mappings directory, else `./mappings` when present, else the built-in copies.
pub fn mappings_dir(config: &Config) -> Option<PathBuf> {
    config.mappings_dir.clone().or_else(|| Path::new("mappings").is_dir().then(|| PathBuf::from("mappings")))
}

fn load_mappings(config: &Config) -> Result<Mappings, String> {
    Mappings::load(mappings_dir(config).as_deref()).map_err(|error| error.to_string())
}

fn check(config: &Config, mappings: &Mappings) -> ExitCode {
    println!("configuration: ok (nothing was contacted or created)");
    if config.upstream.url.is_none() {
        println!("  upstream: none configured; `run` would start the bundled sora-sim emulator");
    }
    println!("  effective settings:");
    for line in toml::to_string(config).unwrap_or_default().lines() {
        println!("    {line}");
    }
    println!("mappings: ok ({})", mappings.source);
    for target in mappings.legacy.targets() {
        println!("  translated: {target}");
    }
    let targets = &mappings.upstream.targets;
    println!(
        "  upstream targets: {}, {}, {}, {}",
        targets.start_recording, targets.stop_recording, targets.list_sessions, targets.list_connections
    );
    ExitCode::SUCCESS
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init();
}

/// Serves the shim until SIGINT/SIGTERM.
async fn run(config: Config, mappings: Mappings) -> Result<(), String> {
    let store = SqliteStore::open(&config.store.path, std::time::Duration::from_millis(config.store.busy_timeout_ms)).map_err(|error| format!("store: {error}"))?;
    tracing::info!(path = %config.store.path.display(), "order store opened");
    tracing::info!(source = %mappings.source, "mappings loaded");

    let listener = TcpListener::bind(config.listen).await.map_err(|error| format!("cannot listen on {}: {error}", config.listen))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let upstream_url = match &config.upstream.url {
        Some(url) => url.clone(),
        None => start_bundled_emulator(address).await?,
    };
    let base = upstream_base(&upstream_url).map_err(|message| format!("upstream.url: {message}"))?;
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let upstream = Upstream::new(base, &config.upstream, Arc::clone(&metrics));

    let options = ServeOptions {
        header_read_timeout: std::time::Duration::from_millis(config.limits.header_read_timeout_ms),
        shutdown_grace: std::time::Duration::from_millis(config.limits.shutdown_grace_ms),
    };
    let app = Arc::new(App::new(config, mappings, Arc::new(store), upstream, metrics)?);
    tokio::spawn(crate::reconciler::run(Arc::clone(&app)));
    let service = stack::build(app);
    announce(&format!("listening on http://{address}"));
    tracing::info!(%address, upstream = %upstream_url, "sora-legacy-shim ready");
    serve(listener, service, options, shutdown_signal()).await;
    Ok(())
}

/// Starts `sora-sim` inside this process on a free loopback port, with its session webhook wired
/// to the shim listening on `shim`, and returns its URL.
async fn start_bundled_emulator(shim: SocketAddr) -> Result<String, String> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|error| format!("cannot start the bundled emulator: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let hook_host = if shim.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], shim.port())) } else { shim };
    let options = SimOptions {
        session_webhook_url: Some(format!("http://{hook_host}{}", crate::routing::SESSION_HOOK_PATH)),
        ..SimOptions::default()
    };
    tokio::spawn(run_sim(listener, options, std::future::pending::<()>()));
    let url = format!("http://{address}");
    tracing::warn!(
        "NO UPSTREAM CONFIGURED: started the bundled Sora emulator (sora-sim) at {url}. \
         Recordings are emulated, not real. Set --upstream or SORA_SHIM__UPSTREAM__URL to front a real Sora."
    );
    announce(&format!(
        "upstream {url} (bundled sora-sim emulator; control plane: POST {url}/sim/connect, POST {url}/sim/disconnect, GET {url}/sim/state)"
    ));
    Ok(url)
}

/// One machine-readable line on stdout (logs go to stderr).
fn announce(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
