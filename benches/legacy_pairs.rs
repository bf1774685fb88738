//! Load generator for the "translated" scenario of `bench/run.sh`: StartRecording + StopRecording
//! *pairs* on a pool of channels that have a session upstream. One fixed request cannot express
//! that (a Stop must follow its own Start on the same channel), so `oha` is not used here.
//!
//! ```sh
//! legacy_pairs connect --sim URL --channels N [--prefix bench-pair-]
//! legacy_pairs run --url URL --api legacy|native --channels N [--prefix bench-pair-]
//!              --duration SECS [--warmup SECS] (--rate PAIRS_PER_SEC | --concurrency C)
//! ```
//!
//! `connect` opens one fake client (so one session) per channel on `sora-sim` (`POST
//! /sim/connect`). `run` sends, per pair, `Start` then `Stop` for one channel taken from the
//! pool (a channel is used by one pair at a time):
//! - `--api legacy`: `Sora_20161101.StartRecording {"channel_id", "expire_time": 3600}` and
//!   `Sora_20161101.StopRecording {"channel_id"}` (to the shim);
//! - `--api native`: `Sora_20231220.StartRecording {"channel_id"}` and
//!   `Sora_20231220.StopRecording {"channel_id"}` (straight to `sora-sim`).
//!
//! `--concurrency C` is closed-loop (C workers, each on its own channels, back to back):
//! throughput at saturation. `--rate R` is open-loop: a pair is due every 1/R s whatever
//! happened before, and its latency runs from the moment it was due (like `oha -q R
//! --latency-correction`), so waiting for a free channel or connection counts; at most
//! `--channels` pairs are in flight. Prints one JSON line: pairs, errors, pairs/s, and
//! percentiles (ms) of the whole pair and of each call. Every request has a 10 s deadline and
//! the run stops at `--duration`, waiting at most 10 s more for pairs in flight. Under plain
//! `cargo bench` (which passes `--bench`) it prints its usage and exits.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const USAGE: &str = "usage:
  legacy_pairs connect --sim URL --channels N [--prefix bench-pair-]
  legacy_pairs run --url URL --api legacy|native --channels N [--prefix bench-pair-]
               --duration SECS [--warmup SECS] (--rate PAIRS_PER_SEC | --concurrency C)";

const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Legacy,
    Native,
}

#[derive(Clone, Copy)]
enum Load {
    Rate(f64),
    Concurrency(usize),
}

struct RunArgs {
    url: String,
    api: Api,
    channels: usize,
    prefix: String,
    duration: Duration,
    warmup: Duration,
    load: Load,
}

enum Command {
    Connect { sim: String, channels: usize, prefix: String },
    Run(RunArgs),
}

fn parse_args() -> Result<Option<Command>, String> {
    let mut args = std::env::args().skip(1).peekable();
    let command = match args.next().as_deref() {
        None | Some("--bench" | "-h" | "--help") => return Ok(None),
        Some(command @ ("connect" | "run")) => command.to_owned(),
        Some(other) => return Err(format!("unknown command {other:?}")),
    };
    let mut options = BTreeMap::new();
    while let Some(name) = args.next() {
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {name:?}"));
        }
        let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
        options.insert(name, value);
    }
    let get = |name: &str| options.get(name).cloned();
    let need = |name: &str| get(name).ok_or_else(|| format!("{name} is required"));
    let number = |name: &str, value: String| value.parse::<f64>().map_err(|error| format!("{name}: {error}"));
    let channels = number("--channels", need("--channels")?)? as usize;
    if channels == 0 {
        return Err("--channels must be at least 1".into());
    }
    let prefix = get("--prefix").unwrap_or_else(|| "bench-pair-".into());
    if command == "connect" {
        return Ok(Some(Command::Connect { sim: need("--sim")?, channels, prefix }));
    }
    let api = match need("--api")?.as_str() {
        "legacy" => Api::Legacy,
        "native" => Api::Native,
        other => return Err(format!("--api must be legacy or native, not {other:?}")),
    };
    let load = match (get("--rate"), get("--concurrency")) {
        (Some(rate), None) => Load::Rate(number("--rate", rate)?.max(0.001)),
        (None, Some(workers)) => Load::Concurrency((number("--concurrency", workers)? as usize).clamp(1, channels)),
        _ => return Err("give exactly one of --rate and --concurrency".into()),
    };
    Ok(Some(Command::Run(RunArgs {
        url: need("--url")?,
        api,
        channels,
        prefix,
        duration: Duration::from_secs_f64(number("--duration", need("--duration")?)?),
        warmup: Duration::from_secs_f64(number("--warmup", get("--warmup").unwrap_or_else(|| "0".into()))?),
        load,
    })))
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(Some(command)) => command,
        Ok(None) => {
            println!("{USAGE}\n(a helper of bench/run.sh; it measures nothing by itself)");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("legacy_pairs: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let outcome = match command {
        Command::Connect { sim, channels, prefix } => connect(&client, &sim, channels, &prefix).await,
        Command::Run(args) => run(client, args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("legacy_pairs: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One POST; `Ok(status)` once the whole answer is read.
async fn post(client: &HttpClient, url: &str, target: Option<&str>, body: String) -> Result<u16, String> {
    let mut request = http::Request::post(url).header("content-type", "application/json");
    if let Some(target) = target {
        request = request.header("x-sora-target", target);
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|error| error.to_string())?;
    let call = async {
        let response = client.request(request).await.map_err(|error| format!("request failed: {error}"))?;
        let status = response.status().as_u16();
        response.into_body().collect().await.map_err(|error| format!("body failed: {error}"))?;
        Ok(status)
    };
    tokio::time::timeout(REQUEST_DEADLINE, call).await.map_err(|_| "timed out".to_owned())?
}

async fn connect(client: &HttpClient, sim: &str, channels: usize, prefix: &str) -> Result<(), String> {
    let url = format!("{}/sim/connect", sim.trim_end_matches('/'));
    for i in 0..channels {
        let body = json!({"channel_id": channel_name(prefix, i)}).to_string();
        let status = post(client, &url, None, body).await?;
        if status != 200 {
            return Err(format!("POST {url} for channel {i} answered {status}"));
        }
    }
    println!("{}", json!({"connected": channels, "prefix": prefix}));
    Ok(())
}

fn channel_name(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:05}")
}

/// What one pair took, in microseconds, or why it failed.
struct PairResult {
    /// From the moment the pair was due (open loop) or began (closed loop) until Stop answered.
    total_us: u64,
    start_us: u64,
    stop_us: u64,
    /// `"200/200"` style, or the transport error.
    outcome: String,
    ok: bool,
}

async fn pair(client: &HttpClient, url: &str, api: Api, channel: &str, due: Instant) -> PairResult {
    let (start_target, stop_target, start_body) = match api {
        Api::Legacy => (
            "Sora_20161101.StartRecording",
            "Sora_20161101.StopRecording",
            json!({"channel_id": channel, "expire_time": 3600}),
        ),
        Api::Native => ("Sora_20231220.StartRecording", "Sora_20231220.StopRecording", json!({"channel_id": channel})),
    };
    let stop_body = json!({"channel_id": channel}).to_string();
    let sent = Instant::now();
    let start = post(client, url, Some(start_target), start_body.to_string()).await;
    let stop_sent = Instant::now();
    // Stop even after a failed Start, so the channel is clean for the next pair.
    let stop = post(client, url, Some(stop_target), stop_body).await;
    let done = Instant::now();
    let micros = |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros() as u64;
    let (outcome, ok) = match (&start, &stop) {
        (Ok(a), Ok(b)) => (format!("{a}/{b}"), *a == 200 && *b == 200),
        (Err(error), _) | (_, Err(error)) => (error.clone(), false),
    };
    PairResult {
        total_us: micros(due, done),
        start_us: micros(sent, stop_sent),
        stop_us: micros(stop_sent, done),
        outcome,
        ok,
    }
}

/// Channels not in use by a pair in flight.
struct Pool {
    free: Mutex<Vec<String>>,
    permits: tokio::sync::Semaphore,
}

impl Pool {
    fn new(prefix: &str, channels: usize) -> Self {
        Self {
            free: Mutex::new((0..channels).rev().map(|i| channel_name(prefix, i)).collect()),
            permits: tokio::sync::Semaphore::new(channels),
        }
    }
}

#[derive(Default)]
struct Tally {
    total: Vec<u64>,
    start: Vec<u64>,
    stop: Vec<u64>,
    outcomes: BTreeMap<String, u64>,
    errors: u64,
}

impl Tally {
    fn add(&mut self, result: PairResult) {
        self.total.push(result.total_us);
        self.start.push(result.start_us);
        self.stop.push(result.stop_us);
        *self.outcomes.entry(result.outcome).or_default() += 1;
        if !result.ok {
            self.errors += 1;
        }
    }
}

/// `oha`'s convention: the value at index `p/100 * n` of the sorted samples, in ms.
fn percentiles(samples: &mut [u64]) -> Value {
    samples.sort_unstable();
    let at = |p: f64| -> Value {
        if samples.is_empty() {
            return Value::Null;
        }
        let index = ((p / 100.0) * samples.len() as f64) as usize;
        json!(samples[index.min(samples.len() - 1)] as f64 / 1000.0)
    };
    let mean = if samples.is_empty() {
        Value::Null
    } else {
        json!(samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0)
    };
    json!({
        "p50": at(50.0), "p90": at(90.0), "p99": at(99.0), "p99.9": at(99.9),
        "max": samples.last().map(|max| *max as f64 / 1000.0), "mean": mean,
    })
}

async fn run(client: HttpClient, args: RunArgs) -> Result<(), String> {
    let url = format!("{}/", args.url.trim_end_matches('/'));
    let pool = Arc::new(Pool::new(&args.prefix, args.channels));
    if !args.warmup.is_zero() {
        drive(&client, &url, &args, &pool, args.warmup).await;
    }
    let begun = Instant::now();
    let mut tally = drive(&client, &url, &args, &pool, args.duration).await;
    let elapsed = begun.elapsed().as_secs_f64();
    let pairs = tally.total.len();
    let report = json!({
        "api": match args.api { Api::Legacy => "legacy", Api::Native => "native" },
        "mode": match args.load { Load::Rate(_) => "rate", Load::Concurrency(_) => "saturation" },
        "rate": match args.load { Load::Rate(rate) => json!(rate), Load::Concurrency(_) => Value::Null },
        "concurrency": match args.load { Load::Rate(_) => json!(args.channels), Load::Concurrency(workers) => json!(workers) },
        "pairs": pairs,
        "errors": tally.errors,
        "seconds": elapsed,
        "pairs_per_sec": pairs as f64 / elapsed,
        "outcomes": tally.outcomes,
        "latency_ms": percentiles(&mut tally.total),
        "start_ms": percentiles(&mut tally.start),
        "stop_ms": percentiles(&mut tally.stop),
    });
    println!("{report}");
    Ok(())
}

/// Runs the load for `duration`, then waits (bounded) for the pairs in flight.
async fn drive(client: &HttpClient, url: &str, args: &RunArgs, pool: &Arc<Pool>, duration: Duration) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let begun = Instant::now();
    let deadline = begun + duration;
    let mut tasks = tokio::task::JoinSet::new();
    match args.load {
        Load::Concurrency(workers) => {
            for worker in 0..workers {
                let (client, url, tally, api) = (client.clone(), url.to_owned(), Arc::clone(&tally), args.api);
                // Worker w owns channels w, w + workers, w + 2·workers, ...
                let mine: Vec<String> =
                    (worker..args.channels).step_by(workers).map(|i| channel_name(&args.prefix, i)).collect();
                tasks.spawn(async move {
                    let mut next = 0;
                    while Instant::now() < deadline {
                        let result = pair(&client, &url, api, &mine[next % mine.len()], Instant::now()).await;
                        next += 1;
                        tally.lock().unwrap().add(result);
                    }
                });
            }
        }
        Load::Rate(rate) => {
            let period = Duration::from_secs_f64(1.0 / rate);
            for i in 0u32.. {
                let due = begun + period * i;
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                // Like `oha --latency-correction`: the clock starts when the scheduler wakes.
                let woke = Instant::now();
                let (client, url, tally, pool, api) =
                    (client.clone(), url.to_owned(), Arc::clone(&tally), Arc::clone(pool), args.api);
                tasks.spawn(async move {
                    let Ok(_permit) = pool.permits.acquire().await else { return };
                    let channel = pool.free.lock().unwrap().pop().expect("a permit means a free channel");
                    let result = pair(&client, &url, api, &channel, woke).await;
                    pool.free.lock().unwrap().push(channel);
                    tally.lock().unwrap().add(result);
                });
                // Reap finished tasks as we go so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Arc::try_unwrap(tally).map(|tally| tally.into_inner().unwrap()).unwrap_or_else(|shared| {
        let mut tally = shared.lock().unwrap();
        std::mem::take(&mut *tally)
    })
}
