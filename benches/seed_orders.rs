//! Bulk-loads active legacy orders into a shim store, for `bench/run.sh`.
//!
//! ```sh
//! seed_orders --store PATH --orders N [--prefix channel-] [--batch 50000]
//! ```
//!
//! Channel ids are `{prefix}{i:07}` for `i` in `0..N`; every order is active and never expires
//! (`expire_time: 0`), carries a small metadata object, and is written with
//! `SqliteStore::insert_many` in transactions of `--batch` orders. Prints one JSON line
//! (`orders`, `seconds`, `bytes` on disk) on stdout. Not a benchmark itself: under plain
//! `cargo bench` (which passes `--bench`) it prints its usage and exits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sora_legacy_shim::app::now_secs;
use sora_legacy_shim::store::Order;
use sora_legacy_shim::store::sqlite::SqliteStore;

const USAGE: &str = "usage: seed_orders --store PATH --orders N [--prefix channel-] [--batch 50000]";

struct Args {
    store: PathBuf,
    orders: usize,
    prefix: String,
    batch: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut store = None;
    let mut orders = None;
    let mut prefix = "channel-".to_owned();
    let mut batch = 50_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--store" => store = Some(PathBuf::from(value("--store")?)),
            "--orders" => orders = Some(value("--orders")?.parse().map_err(|error| format!("--orders: {error}"))?),
            "--prefix" => prefix = value("--prefix")?,
            "--batch" => batch = value("--batch")?.parse().map_err(|error| format!("--batch: {error}"))?,
            // `cargo bench` runs every bench target with `--bench`: nothing to measure here.
            "--bench" => return Ok(None),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match (store, orders) {
        (Some(store), Some(orders)) => Ok(Some(Args { store, orders, prefix, batch: batch.max(1) })),
        _ => Err("--store and --orders are required".into()),
    }
}

/// Bytes of the database and its WAL / shared-memory files.
fn bytes_on_disk(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).ok().map(|meta| meta.len())
        })
        .sum()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}\n(a helper of bench/run.sh; it measures nothing by itself)");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("seed_orders: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let begun = Instant::now();
    let store = match SqliteStore::open(&args.store, Duration::from_secs(30)) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("seed_orders: {error}");
            return ExitCode::FAILURE;
        }
    };
    let now = now_secs();
    let mut next = 0;
    while next < args.orders {
        let end = (next + args.batch).min(args.orders);
        let orders: Vec<Order> = (next..end)
            .map(|i| Order {
                recording_id: ulid::Ulid::generate().to_string(),
                channel_id: format!("{}{i:07}", args.prefix),
                created_at: now,
                expire_time: 0,
                expired_at: now,
                split_duration: None,
                split_only: false,
                metadata: Some(serde_json::json!({"seed": i, "label": "bench"})),
            })
            .collect();
        if let Err(error) = store.insert_many(orders).await {
            eprintln!("seed_orders: inserting orders {next}..{end}: {error}");
            return ExitCode::FAILURE;
        }
        next = end;
    }
    drop(store);
    let report = serde_json::json!({
        "store": args.store.display().to_string(),
        "orders": args.orders,
        "seconds": begun.elapsed().as_secs_f64(),
        "bytes": bytes_on_disk(&args.store),
    });
    println!("{report}");
    ExitCode::SUCCESS
}
