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
use crate::server::reload::Reloadable;
use crate::server::{ServeOptions, serve, shutdown_signal, stack};
use crate::sim::{SimOptions, run as run_sim};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::upstream::Upstream;

/// A drop-in proxy that answers Sora's removed legacy recording API on top of the session API.
#[derive(Clone, Debug, Parser)]
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
    /// Log format: pretty (terminals) or json (collectors).
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
}

#[derive(Clone, Debug, Subcommand)]
enum Command {
    /// Serve the shim (the default).
    Run,
    /// Validate the configuration and mappings, print what would be used, and exit.
    Check,
    /// Check a real Sora (--upstream) against the assumptions in mappings/ with a short,
    /// harmless sequence on an idle channel; exits 1 on any difference.
    Probe {
        /// Throwaway channel to use; it must have no session (default: a fresh random name).
        #[arg(long, value_name = "ID")]
        channel: Option<String>,
    },
    /// GET a URL and exit 0 on a 2xx answer (container health checks; no curl needed).
    Healthcheck {
        /// Default: /health on the configured `listen` address (0.0.0.0 and [::] asked on loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A health check only asks a URL: it must not fail on the configuration of this host.
    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| health_url(&cli));
        return block_on(healthcheck(url));
    }
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
    match cli.command.clone().unwrap_or(Command::Run) {
        Command::Check => check(&config, &mappings),
        Command::Probe { channel } => block_on(probe(&config, &mappings, channel)),
        Command::Healthcheck { .. } => unreachable!("answered before the configuration is loaded"),
        Command::Run => {
            init_tracing(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
            match runtime {
                Ok(runtime) => match runtime.block_on(run(cli, config, mappings)) {
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
    if let Some(format) = &cli.log_format {
        overrides.push(("log.format", format.clone()));
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
    // The same checks `run` makes when it assembles the app (the forward targets' TLS roots).
    let forwarder = crate::webhooks::forward::Forwarder::new(std::time::Duration::from_secs(1), 1);
    let forward = |url: &Option<String>| url.as_deref().and_then(|url| crate::config::forward_url(url).ok());
    let (session, event) = (forward(&config.session_webhook.forward_url), forward(&config.event_webhook.forward_url));
    let targets = [("session_webhook.forward_url", session.as_ref()), ("event_webhook.forward_url", event.as_ref())];
    if let Err(message) = forwarder.can_reach_all(&targets) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    announce("configuration: ok (nothing was contacted or created)");
    if config.upstream.url.is_none() {
        announce("  upstream: none configured; `run` would start the bundled sora-sim emulator");
    }
    announce("  effective settings:");
    for line in toml::to_string(config).unwrap_or_default().lines() {
        announce(&format!("    {line}"));
    }
    announce(&format!("mappings: ok ({})", mappings.source));
    for target in mappings.legacy.targets() {
        announce(&format!("  translated: {target}"));
    }
    let targets = &mappings.upstream.targets;
    announce(&format!(
        "  upstream targets: {}, {}, {}, {}",
        targets.start_recording, targets.stop_recording, targets.list_sessions, targets.list_connections
    ));
    ExitCode::SUCCESS
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn probe(config: &Config, mappings: &Mappings, channel: Option<String>) -> ExitCode {
    let Some(url) = &config.upstream.url else {
        eprintln!("error: probe needs the Sora to check: --upstream URL (or upstream.url)");
        return ExitCode::from(2);
    };
    let base = match upstream_base(url) {
        Ok(base) => base,
        Err(message) => {
            eprintln!("error: upstream.url: {message}");
            return ExitCode::from(2);
        }
    };
    let upstream = Upstream::new(base, &config.upstream, Arc::new(crate::metrics::Metrics::default()));
    let channel = channel.unwrap_or_else(|| format!("sora-legacy-shim-probe-{}", ulid::Ulid::generate()));
    if let Err(reason) = crate::legacy::validate::check_channel_id(&channel) {
        eprintln!("error: --channel {channel:?} is not a valid channel id: {reason}");
        return ExitCode::from(2);
    }
    announce(&format!("probing {url} on channel {channel:?} with mappings from {}", mappings.source));
    match crate::probe::run(&upstream, mappings, &channel).await {
        Ok(checks) => {
            announce(&crate::probe::table(&checks));
            let different = checks.iter().filter(|check| !check.ok).count();
            if different == 0 {
                announce(&format!("all {} assumptions hold", checks.len()));
                ExitCode::SUCCESS
            } else {
                announce(&format!(
                    "{different} of {} assumptions differ: correct the mapping keys above (then `check`)",
                    checks.len()
                ));
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(3)
        }
    }
}

/// `/health` on the address the shim listens on: from the configuration when it loads, else
/// from `--listen`, else the default; an unspecified address is asked on loopback.
fn health_url(cli: &Cli) -> String {
    let listen = load_config(cli).map(|config| config.listen).ok().or_else(|| cli.listen.as_deref()?.parse().ok());
    let mut address = listen.unwrap_or_else(|| crate::config::Config::default().listen);
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr =
            if address.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        address.set_ip(loopback);
    }
    format!("http://{address}/health")
}

async fn healthcheck(url: String) -> ExitCode {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    let uri = match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => uri,
        _ => {
            eprintln!("error: {url:?} is not an absolute http:// URL");
            return ExitCode::from(2);
        }
    };
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    match tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await {
        Ok(Ok(response)) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(Ok(response)) => {
            eprintln!("{url}: {}", response.status());
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            eprintln!("{url}: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("{url}: no answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(log: &crate::config::LogConfig) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.format {
        crate::config::LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One JSON object per line, event fields at the top level, the request span's fields
        // (request id, method, path, target) under "span".
        crate::config::LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init()
        }
    }
}

/// Serves the shim until SIGINT/SIGTERM; SIGHUP re-reads the configuration and `mappings/`.
async fn run(cli: Cli, config: Config, mappings: Mappings) -> Result<(), String> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&config.store.path, std::time::Duration::from_millis(config.store.busy_timeout_ms))
            .map_err(|error| format!("store: {error}"))?,
    );
    tracing::info!(path = %config.store.path.display(), "order store opened");
    tracing::info!(source = %mappings.source, "mappings loaded");

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let bundled = match &config.upstream.url {
        Some(_) => None,
        None => Some(start_bundled_emulator(address).await?),
    };
    let options = ServeOptions {
        header_read_timeout: std::time::Duration::from_millis(config.limits.header_read_timeout_ms),
        shutdown_grace: std::time::Duration::from_millis(config.limits.shutdown_grace_ms),
    };
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let usage = Arc::new(crate::usage::Usage::default());
    // The usage counts of earlier runs (and of replicas sharing the store), before the first call.
    usage.flush(store.as_ref()).await.map_err(|error| format!("store: reading the usage table: {error}"))?;
    let app =
        assemble(config, mappings, Arc::clone(&store), bundled.as_deref(), Arc::clone(&metrics), Arc::clone(&usage))?;
    let upstream_url = app.upstream.base().to_string();
    let live = Arc::new(std::sync::RwLock::new(Arc::clone(&app)));
    tokio::spawn(crate::reconciler::run(Arc::clone(&live)));
    tokio::spawn(crate::usage::flush_periodically(Arc::clone(&live)));
    let service = Reloadable::new(stack::build(app));
    // The SIGHUP handler is in place before the shim says it is ready: a hang-up that came
    // earlier would otherwise end the process (the signal's default action).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| format!("cannot listen for SIGHUP: {error}"))?;
    let kept = Kept { store: Arc::clone(&store), bundled, metrics, usage: Arc::clone(&usage) };
    tokio::spawn(reload_on_sighup(hangups, cli, service.clone(), live, kept));
    announce(&format!("listening on http://{address}"));
    tracing::info!(%address, upstream = %upstream_url, "sora-legacy-shim ready");
    serve(listener, service, options, shutdown_signal()).await;
    match usage.flush(store.as_ref()).await {
        Ok(()) => tracing::info!("usage counts saved"),
        Err(error) => tracing::warn!(%error, "usage counts since the last flush could not be saved"),
    }
    Ok(())
}

/// The application state for `config` and `mappings`, sharing the store, metrics and usage table.
fn assemble(
    config: Config,
    mappings: Mappings,
    store: Arc<dyn Store>,
    bundled: Option<&str>,
    metrics: Arc<crate::metrics::Metrics>,
    usage: Arc<crate::usage::Usage>,
) -> Result<Arc<App>, String> {
    let url = config.upstream.url.as_deref().or(bundled).ok_or("upstream.url: none configured")?.to_owned();
    let base = upstream_base(&url).map_err(|message| format!("upstream.url: {message}"))?;
    let upstream = Upstream::new(base, &config.upstream, Arc::clone(&metrics));
    let mut app = App::new(config, mappings, store, upstream, metrics)?;
    app.usage = usage;
    Ok(Arc::new(app))
}

/// On every SIGHUP: loads the configuration and mappings again and, when both are valid, puts a
/// new stack in force; otherwise logs why and keeps the old one. The listen address and the store
/// cannot change without a restart.
/// What a reload keeps from the running process.
struct Kept {
    store: Arc<dyn Store>,
    bundled: Option<String>,
    metrics: Arc<crate::metrics::Metrics>,
    usage: Arc<crate::usage::Usage>,
}

async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    cli: Cli,
    service: Reloadable,
    live: Arc<std::sync::RwLock<Arc<App>>>,
    kept: Kept,
) {
    let Kept { store, bundled, metrics, usage } = kept;
    while hangups.recv().await.is_some() {
        let current = Arc::clone(&live.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let attempt = load_config(&cli).and_then(|config| {
            let mappings = load_mappings(&config)?;
            Ok((config, mappings))
        });
        let attempt = attempt.and_then(|(config, mappings)| {
            // Files that vanished must not be replaced silently by the built-in copies: an
            // operator's edits (an added alias, a renamed error) would stop applying unnoticed.
            // Only a directory found implicitly (`./mappings`, no `mappings_dir` then or now) counts:
            // naming no directory on purpose after naming one is a choice, not a loss.
            let implicit = config.mappings_dir.is_none() && current.config.mappings_dir.is_none();
            if implicit && mappings.source == "built-in" && current.mappings.source != "built-in" {
                return Err(format!(
                    "mappings: {} (in force until now) is gone; restore it, or set `mappings_dir`",
                    current.mappings.source
                ));
            }
            Ok((config, mappings))
        });
        let (mut config, mappings) = match attempt {
            Ok(loaded) => loaded,
            Err(message) => {
                tracing::error!(error = %message, "reload rejected; the previous configuration and mappings stay in force");
                continue;
            }
        };
        let mut fixed = Vec::new();
        if config.listen != current.config.listen {
            fixed.push("listen");
            config.listen = current.config.listen;
        }
        if config.store != current.config.store {
            fixed.push("store");
            config.store = current.config.store.clone();
        }
        if config.log != current.config.log {
            fixed.push("log");
            config.log = current.config.log.clone();
        }
        if config.limits.header_read_timeout_ms != current.config.limits.header_read_timeout_ms {
            fixed.push("limits.header_read_timeout_ms");
            config.limits.header_read_timeout_ms = current.config.limits.header_read_timeout_ms;
        }
        if config.limits.shutdown_grace_ms != current.config.limits.shutdown_grace_ms {
            fixed.push("limits.shutdown_grace_ms");
            config.limits.shutdown_grace_ms = current.config.limits.shutdown_grace_ms;
        }
        if !fixed.is_empty() {
            tracing::warn!(
                changed = %fixed.join(", "),
                "reload: these settings changed but need a restart; the running values stay in force"
            );
        }
        let source = mappings.source.clone();
        match assemble(
            config,
            mappings,
            Arc::clone(&store),
            bundled.as_deref(),
            Arc::clone(&metrics),
            Arc::clone(&usage),
        ) {
            Ok(app) => {
                *live.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::clone(&app);
                service.replace(stack::build(app));
                tracing::info!(mappings = %source, "reloaded configuration and mappings");
            }
            Err(message) => {
                tracing::error!(error = %message, "reload rejected; the previous configuration and mappings stay in force")
            }
        }
    }
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
