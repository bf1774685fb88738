#!/usr/bin/env bash
# Benchmark harness of sora-legacy-shim: builds the release binaries, starts sora-sim as the
# upstream and measures the shim on loopback with an open-loop load generator (oha), each
# scenario against its baseline in the same run, interleaved, several repetitions.
#
#   bench/run.sh            full run (about 10 minutes of measuring on 2 cores, plus builds)
#   bench/run.sh --quick    smoke run (1 repetition, 2 s per measurement, stores up to 100,000)
#
# Options: --quick, --reps N, --duration SECONDS, --full-sizes (with --quick: still 1,000,000
# orders), --only LIST (comma-separated: passthrough,translated,memory,getlist,webhook),
# --no-pin (by default, with 2 or more CPUs, the load generator runs on the first half of the
# CPUs and the servers on the rest -- on 2 CPUs: CPU 0 and CPU 1 -- so they do not steal each
# other's CPU; --no-pin lets every process use every CPU),
# --skip-build (use the binaries already built), --keep (keep the temporary directory).
# Environment: CARGO_TARGET_DIR (as cargo), BENCH_WORK_DIR (parent of the temporary directory,
# default bench/.work, on the disk the store would use in production: SQLite fsyncs matter).
#
# Writes bench/results/results.json, bench/results/results.md, bench/results/passthrough.png and
# the raw per-repetition records bench/results/raw.jsonl. Not part of `cargo test`.
# Only 127.0.0.1 is loaded; every process is started under `timeout` and stopped by PID at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TOOLS=$BENCH/.tools
RESULTS=$BENCH/results
OHA_VERSION=1.16.0

# ---------------------------------------------------------------- options
QUICK=0 FULL_SIZES=0 PIN=1 SKIP_BUILD=0 KEEP=0 REPS="" DURATION="" ONLY="passthrough,translated,memory,getlist,webhook"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --full-sizes) FULL_SIZES=1 ;;
        --pin) PIN=1 ;;
        --no-pin) PIN=0 ;;
        --skip-build) SKIP_BUILD=1 ;;
        --keep) KEEP=1 ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --only) ONLY=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-1} DURATION=${DURATION:-2} WARMUP=1
    GETLIST_SIZES="1000 10000 100000" WEBHOOK_SIZES="0 10000 100000" MEMORY_SIZES="0 10000 100000"
else
    REPS=${REPS:-3} DURATION=${DURATION:-6} WARMUP=2
    GETLIST_SIZES="1000 100000 1000000" WEBHOOK_SIZES="0 10000 1000000" MEMORY_SIZES="0 100000 1000000"
fi
if [ "$FULL_SIZES" = 1 ]; then
    GETLIST_SIZES="1000 100000 1000000" WEBHOOK_SIZES="0 10000 1000000" MEMORY_SIZES="0 100000 1000000"
fi
SAT_CONNECTIONS=32        # closed-loop connections at saturation
RATE_CONNECTIONS=32       # connections available to the open-loop runs
PAIR_CHANNELS=256         # channels with a session for the translated scenario
PAIR_WORKERS=16           # closed-loop workers for pairs at saturation
WEBHOOK_RATE=500          # session.created events per second
LIGHT_RATE=200            # passthrough at light load (a monitoring exporter's kind of traffic)
LIGHT_CONNECTIONS=4
MEMORY_SETTLE=6           # seconds after start-up before reading VmHWM (> one reconciler interval)
PROC_MAX=3600             # hard bound on every server process (seconds)
export SORA_SHIM__LOG__LEVEL=warn

wants() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CPUS=$(nproc)
GEN_CPUS=$((CPUS / 2))
cpu_range() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
if [ "$PIN" = 1 ] && [ "$CPUS" -ge 2 ] && taskset -c "$(cpu_range "$GEN_CPUS" $((CPUS - 1)))" true 2>/dev/null; then
    # Load generator on the first half of the CPUs, servers on the rest (2 CPUs: 0 and 1).
    SRV_PIN=(taskset -c "$(cpu_range "$GEN_CPUS" $((CPUS - 1)))") GEN_PIN=(taskset -c "$(cpu_range 0 $((GEN_CPUS - 1)))")
    GEN_THREADS=$GEN_CPUS
else
    PIN=0 SRV_PIN=() GEN_PIN=() GEN_THREADS=$(nproc)
fi

# ---------------------------------------------------------------- processes
PIDS=()
WORK=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ] || [ "$status" != 0 ]; then log "logs and stores kept in $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() {   # TERM, up to 10 s grace, then KILL; only our own PIDs
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=()
    for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && kept+=("$p"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

# start NAME CMD... : runs CMD under timeout, waits for "listening on http://..." on its stdout;
# sets LAST_PID (the timeout wrapper) and LAST_URL.
start() {
    local name=$1; shift
    : >"$WORK/$name.out"
    "${SRV_PIN[@]}" timeout -k 5 "$PROC_MAX" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    local i
    for i in $(seq 600); do
        LAST_URL=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n 1)
        [ -n "$LAST_URL" ] && return 0
        kill -0 "$LAST_PID" 2>/dev/null || { cat "$WORK/$name.err" >&2; die "$name exited before listening"; }
        sleep 0.1
    done
    die "$name did not print its address within 60 s"
}

real_pid() {   # the process timeout started (its only child)
    local pid=$1 child i
    for i in $(seq 50); do
        child=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}')
        [ -n "$child" ] && { echo "$child"; return; }
        sleep 0.1
    done
    die "no child of $pid"
}

status_kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }

start_sim() { start "sim-$1" "$SIM_BIN" --listen 127.0.0.1:0 --log-level warn; SIM_PID=$LAST_PID SIM_URL=$LAST_URL; }
start_shim() {   # NAME STORE
    start "shim-$1" "$SHIM_BIN" run --listen 127.0.0.1:0 --upstream "$SIM_URL" --store "$2"
    SHIM_PID=$LAST_PID SHIM_URL=$LAST_URL
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- load generation
RAW=""
record() { python3 "$BENCH/report.py" "$@" >>"$RAW"; }

# oha_run OUT.json OHA-ARGS... : bounded; JSON report in OUT.json
oha_run() {
    local out=$1; shift
    "${GEN_PIN[@]}" timeout -k 5 "$((DURATION * 4 + 180))" "$OHA" --no-tui --output-format json \
        --worker-threads "$GEN_THREADS" -w "$@" >"$out" 2>"$out.err" || {
        cat "$out.err" >&2; die "oha failed: $*"; }
}

pairs_run() {   # OUT ARGS...
    local out=$1; shift
    "${GEN_PIN[@]}" timeout -k 5 "$((DURATION * 4 + 120))" "$PAIRS_BIN" run "$@" >"$out" 2>"$out.err" || {
        cat "$out.err" >&2; die "legacy_pairs failed: $*"; }
}

rotate() {   # rotate REP WORDS... : the words, rotated by REP, so no variant always runs first
    local rep=$1; shift
    local words=("$@") n=$# i
    for ((i = 0; i < n; i++)); do printf '%s ' "${words[$(((i + rep) % n))]}"; done
}

# ---------------------------------------------------------------- tools
ensure_oha() {
    if [ -x "$TOOLS/bin/oha" ]; then OHA=$TOOLS/bin/oha
    elif command -v oha >/dev/null && oha --version | grep -q "^oha 1\.1[6-9]\|^oha 1\.[2-9][0-9]"; then OHA=$(command -v oha)
    else
        log "installing oha $OHA_VERSION into $TOOLS (cargo install, a few minutes)"
        timeout 1800 cargo install oha --locked --version "$OHA_VERSION" --root "$TOOLS" >"$TOOLS/oha-install.log" 2>&1 \
            || { tail -n 30 "$TOOLS/oha-install.log" >&2; die "cargo install oha failed"; }
        OHA=$TOOLS/bin/oha
    fi
}

ensure_nginx() {
    NGINX=$(command -v nginx || true)
    [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
    if [ -z "$NGINX" ]; then
        [ "$(id -u)" = 0 ] || die "nginx is missing: install Debian's nginx package (apt-get install nginx)"
        log "installing nginx with apt-get (the system service is not started)"
        # Keep the package's init script from starting a system-wide nginx on port 80.
        local policy_added=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
        fi
        { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nginx; } \
            >"$TOOLS/nginx-install.log" 2>&1 || { [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -n 20 "$TOOLS/nginx-install.log" >&2; die "apt-get install nginx failed"; }
        [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
        NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    fi
}

ensure_python() {   # python3 with matplotlib, for the plot only
    if python3 -c 'import matplotlib' 2>/dev/null; then PLOT_PY=python3
    elif [ -x "$TOOLS/venv/bin/python" ] && "$TOOLS/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then PLOT_PY=$TOOLS/venv/bin/python
    else
        log "installing matplotlib into $TOOLS/venv (pip)"
        { timeout 600 python3 -m venv "$TOOLS/venv" && timeout 600 "$TOOLS/venv/bin/pip" install -q matplotlib; } \
            >"$TOOLS/venv-install.log" 2>&1 || { tail -n 20 "$TOOLS/venv-install.log" >&2; die "pip install matplotlib failed"; }
        PLOT_PY=$TOOLS/venv/bin/python
    fi
}

build() {
    local helper
    for helper in seed_orders legacy_pairs bare_proxy; do
        grep -q "name *= *\"$helper\"" "$ROOT/Cargo.toml" || die "Cargo.toml lacks the helper entry [[bench]] name = \"$helper\", harness = false"
    done
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    SHIM_BIN=$target/release/sora-legacy-shim SIM_BIN=$target/release/sora-sim
    local json=$WORK/cargo-build.json
    if [ "$SKIP_BUILD" = 1 ]; then
        [ -x "$SHIM_BIN" ] && [ -x "$SIM_BIN" ] || die "--skip-build but $SHIM_BIN or $SIM_BIN is missing"
    fi
    if [ "$SKIP_BUILD" = 1 ]; then
        newest() { ls -t "$target"/release/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | head -n 1; }
        SEED_BIN=$(newest seed_orders) PAIRS_BIN=$(newest legacy_pairs) BARE_BIN=$(newest bare_proxy)
        [ -x "$SEED_BIN" ] && [ -x "$PAIRS_BIN" ] && [ -x "$BARE_BIN" ] || die "--skip-build but the bench helpers were never built"
        return
    fi
    log "building release binaries and the bench helpers (cargo build --release --locked)"
    (cd "$ROOT" && timeout 1800 cargo build --release --locked --bin sora-legacy-shim --bin sora-sim \
        --bench seed_orders --bench legacy_pairs --bench bare_proxy --message-format=json-render-diagnostics) >"$json" \
        || die "cargo build failed"
    { read -r SEED_BIN; read -r PAIRS_BIN; read -r BARE_BIN; } \
        < <(python3 "$BENCH/report.py" executables "$json" seed_orders legacy_pairs bare_proxy)
}

machine_meta() {
    local nginx_version=""
    [ -n "${NGINX:-}" ] && nginx_version=$("$NGINX" -v 2>&1 | head -n 1)
    META_CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) \
    META_MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) \
    META_KERNEL=$(uname -sr) META_NPROC=$(nproc) \
    META_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) \
    META_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -c 1) \
    META_TOOLS="$("$OHA" --version 2>/dev/null | head -n 1), ${nginx_version:-nginx not used}, $(rustc --version 2>/dev/null)" \
    META_QUICK=$QUICK META_PIN=$PIN META_PIN_TEXT="${GEN_PIN[*]:-} / ${SRV_PIN[*]:-}" META_REPS=$REPS META_DURATION=$DURATION META_WARMUP=$WARMUP \
    META_EXTRA="sat_connections=$SAT_CONNECTIONS rate_connections=$RATE_CONNECTIONS pair_channels=$PAIR_CHANNELS pair_workers=$PAIR_WORKERS webhook_rate=$WEBHOOK_RATE light_rate=$LIGHT_RATE" \
    META_SIZES="getlist=$GETLIST_SIZES;webhook=$WEBHOOK_SIZES;memory=$MEMORY_SIZES" META_ONLY=$ONLY \
    python3 -c '
import json, os, time
e = os.environ
params = {"reps": int(e["META_REPS"]), "duration": float(e["META_DURATION"]), "warmup": float(e["META_WARMUP"]),
          "pin": e["META_PIN"] == "1", "pinning": e["META_PIN_TEXT"], "scenarios": e["META_ONLY"]}
for pair in e["META_EXTRA"].split():
    key, value = pair.split("=")
    params[key] = int(value)
for pair in e["META_SIZES"].split(";"):
    key, value = pair.split("=")
    params[key + "_sizes"] = [int(n) for n in value.split()]
print(json.dumps({
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": e["META_COMMIT"], "dirty": bool(e["META_DIRTY"]), "quick": e["META_QUICK"] == "1",
    "machine": {"nproc": int(e["META_NPROC"]), "cpu": e["META_CPU"], "memory": e["META_MEM"], "kernel": e["META_KERNEL"]},
    "tools": e["META_TOOLS"], "params": params}, indent=1))
' >"$WORK/meta.json"
}

# ---------------------------------------------------------------- scenarios
STATS_TARGET='x-sora-target: Sora_20171010.GetStatsReport'

# passthrough_at_rate PHASE CONNECTIONS RATE: every passthrough variant, open loop at RATE, each
# repetition in a rotated order (uses the caller's `url` and `args`).
passthrough_at_rate() {
    local phase=$1 connections=$2 rate=$3 rep variant
    for rep in $(seq "$REPS"); do
        for variant in $(rotate "$rep" direct shim bare nginx); do
            oha_run "$WORK/o.json" -z "${DURATION}s" -c "$connections" -q "$rate" --latency-correction "${args[@]}" "${url[$variant]}/"
            record record-oha "$WORK/o.json" scenario=passthrough phase="$phase" variant="$variant" rep="$rep" concurrency="$connections" target_rate="$rate"
            log "  $phase rep $rep $variant: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
}

scenario_passthrough() {
    log "passthrough: direct vs shim vs bare hyper proxy vs nginx"
    start_sim pt
    start_shim pt "$WORK/passthrough.db"
    # The same HTTP crates and settings as the shim with nothing in between: what hyper itself costs.
    start bare-pt "$BARE_BIN" --listen 127.0.0.1:0 --upstream "$SIM_URL"
    local bare_pid=$LAST_PID bare_url=$LAST_URL
    local prefix=$WORK/nginx port
    mkdir -p "$prefix/tmp" && chmod 755 "$WORK" "$prefix" "$prefix/tmp"
    port=$(free_port)
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@UPSTREAM@|${SIM_URL#http://}|" \
        "$BENCH/nginx.conf.template" >"$prefix/nginx.conf"
    "${SRV_PIN[@]}" timeout -k 5 "$PROC_MAX" "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$WORK/nginx.out" 2>"$WORK/nginx.err" &
    local nginx_pid=$! i
    PIDS+=("$nginx_pid")
    declare -A url=([direct]=$SIM_URL [shim]=$SHIM_URL [bare]=$bare_url [nginx]="http://127.0.0.1:$port")
    for i in $(seq 100); do curl -fsS -o /dev/null "${url[nginx]}/" -H "$STATS_TARGET" -d '{}' 2>/dev/null && break; sleep 0.1; done
    local expected variant
    expected=$(curl -fsS "${url[direct]}/" -H "$STATS_TARGET" -d '{}')
    for variant in shim bare nginx; do
        [ "$(curl -fsS "${url[$variant]}/" -H "$STATS_TARGET" -d '{}')" = "$expected" ] \
            || die "$variant does not pass GetStatsReport through unchanged"
    done
    local args=(-m POST -H "$STATS_TARGET" -T application/json -d '{}')
    for variant in direct shim bare nginx; do
        oha_run "$WORK/warm.json" -z "${WARMUP}s" -c "$SAT_CONNECTIONS" "${args[@]}" "${url[$variant]}/"
    done
    local rep
    for rep in $(seq "$REPS"); do
        for variant in $(rotate "$rep" direct shim bare nginx); do
            oha_run "$WORK/o.json" -z "${DURATION}s" -c "$SAT_CONNECTIONS" "${args[@]}" "${url[$variant]}/"
            record record-oha "$WORK/o.json" scenario=passthrough phase=saturation variant="$variant" rep="$rep" concurrency="$SAT_CONNECTIONS"
            log "  saturation rep $rep $variant: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    local rate
    rate=$(python3 "$BENCH/report.py" median "$RAW" ok_rps scenario=passthrough phase=saturation variant=shim)
    rate=$(python3 -c "print(max(1, round($rate * 0.5)))")
    log "  fixed rate: $rate req/s (50 % of the shim's median saturation rate)"
    passthrough_at_rate rate "$RATE_CONNECTIONS" "$rate"
    log "  light load: $LIGHT_RATE req/s over $LIGHT_CONNECTIONS connections (what one request costs on an idle machine)"
    passthrough_at_rate light "$LIGHT_CONNECTIONS" "$LIGHT_RATE"
    stop_pid "$nginx_pid"; stop_pid "$bare_pid"; stop_pid "$SHIM_PID"; stop_pid "$SIM_PID"
}

scenario_translated() {
    log "translated: legacy Start+Stop pairs through the shim vs native Start+Stop to sora-sim"
    start_sim tr
    start_shim tr "$WORK/translated.db"
    "$PAIRS_BIN" connect --sim "$SIM_URL" --channels "$PAIR_CHANNELS" >/dev/null
    declare -A url=([native]=$SIM_URL [legacy]=$SHIM_URL)
    local variant rep common=(--channels "$PAIR_CHANNELS" --duration "$DURATION")
    for variant in native legacy; do
        pairs_run "$WORK/p.json" --url "${url[$variant]}" --api "$variant" --channels "$PAIR_CHANNELS" --duration "$WARMUP" --concurrency "$PAIR_WORKERS"
        # The pairs must succeed (a few may race the reconciler): otherwise the numbers mean nothing.
        python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); sys.exit(r["pairs"] == 0 or r["errors"] > 0.01 * r["pairs"])' "$WORK/p.json" \
            || { cat "$WORK/p.json" >&2; die "$variant pairs fail during warm-up"; }
    done
    for rep in $(seq "$REPS"); do
        for variant in $(rotate "$rep" native legacy); do
            pairs_run "$WORK/p.json" --url "${url[$variant]}" --api "$variant" "${common[@]}" --concurrency "$PAIR_WORKERS"
            record record-pairs "$WORK/p.json" scenario=translated phase=saturation variant="$variant" rep="$rep" concurrency="$PAIR_WORKERS"
            log "  saturation rep $rep $variant: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    local rate
    rate=$(python3 "$BENCH/report.py" median "$RAW" ok_rps scenario=translated phase=saturation variant=legacy)
    rate=$(python3 -c "print(max(1, round($rate * 0.5, 1)))")
    log "  fixed rate: $rate pairs/s (50 % of the shim's median saturation rate)"
    for rep in $(seq "$REPS"); do
        for variant in $(rotate "$rep" native legacy); do
            pairs_run "$WORK/p.json" --url "${url[$variant]}" --api "$variant" "${common[@]}" --rate "$rate"
            record record-pairs "$WORK/p.json" scenario=translated phase=rate variant="$variant" rep="$rep" concurrency="$PAIR_CHANNELS" target_rate="$rate"
            log "  rate rep $rep $variant: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    stop_pid "$SHIM_PID"; stop_pid "$SIM_PID"
}

seed() {   # seed N : the path of a store with N active orders (created once per run)
    local n=$1 path=$WORK/stores/orders-$1.db
    if [ ! -e "$path" ]; then
        mkdir -p "$WORK/stores"
        if [ "$n" = 0 ]; then
            timeout 600 "$SEED_BIN" --store "$path" --orders 0 >"$WORK/seed-$n.json"
        else
            log "  seeding $n orders" 
            timeout 1200 "$SEED_BIN" --store "$path" --orders "$n" >"$WORK/seed-$n.json"
        fi
    fi
    echo "$path"
}
seed_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/seed-$1.json" "$2"; }
store_bytes() { local total=0 f; for f in "$1" "$1-wal" "$1-shm"; do [ -e "$f" ] && total=$((total + $(stat -c %s "$f"))); done; echo "$total"; }

scenario_memory() {
    log "memory: peak RSS of the shim and store size by orders"
    start_sim mem
    local n store pid hwm_idle rss_idle hwm_after list_out
    for n in $MEMORY_SIZES; do
        store=$(seed "$n")
        start_shim "mem-$n" "$store"
        pid=$(real_pid "$SHIM_PID")
        sleep "$MEMORY_SETTLE"
        hwm_idle=$(status_kib "$pid" VmHWM) rss_idle=$(status_kib "$pid" VmRSS)
        curl -sS -o /dev/null "$SHIM_URL/" -H 'x-sora-target: Sora_20161101.GetStartedRecording' -d '{"channel_id":"channel-0000000"}'
        list_out=$(timeout 300 curl -sS -o /dev/null -w '%{time_total} %{size_download} %{http_code}' -X POST "$SHIM_URL/" \
            -H 'x-sora-target: Sora_20161101.ListStartedRecording')
        hwm_after=$(status_kib "$pid" VmHWM)
        stop_pid "$SHIM_PID"
        read -r list_s list_b list_code <<<"$list_out"
        [ "$list_code" = 200 ] || die "ListStartedRecording with $n orders answered $list_code"
        echo "{\"orders\": $n, \"hwm_idle_bytes\": $((hwm_idle * 1024)), \"rss_idle_bytes\": $((rss_idle * 1024)), \"hwm_after_list_bytes\": $((hwm_after * 1024)), \"list_seconds\": $list_s, \"list_bytes\": $list_b, \"store_bytes\": $(store_bytes "$store"), \"seed_seconds\": $(seed_field "$n" seconds)}" >"$WORK/mem.json"
        record record-json "$WORK/mem.json" scenario=memory
        log "  $n orders: VmHWM idle $((hwm_idle / 1024)) MiB, after List $((hwm_after / 1024)) MiB, List ${list_s}s ${list_b} B, store $(($(store_bytes "$store") / 1048576)) MiB"
    done
    stop_pid "$SIM_PID"
}

# ListStartedRecording answers every order (about 160 bytes each): few requests on big stores.
list_requests() { if [ "$1" -ge 1000000 ]; then echo 1; elif [ "$1" -ge 100000 ]; then echo 5; else echo 50; fi; }

scenario_getlist() {
    log "GetStartedRecording / ListStartedRecording by orders in the store"
    start_sim gl
    local n rep store channel get_args list_args=(-m POST -H 'x-sora-target: Sora_20161101.ListStartedRecording' -t 120s)
    for n in $GETLIST_SIZES; do seed "$n" >/dev/null; done
    get_body() { printf '{"channel_id":"channel-%07d"}' $(($1 / 2)); }
    for rep in $(seq "$REPS"); do
        for n in $(rotate "$rep" $GETLIST_SIZES); do
            store=$(seed "$n")
            start_shim "gl-$n" "$store"
            get_args=(-m POST -H 'x-sora-target: Sora_20161101.GetStartedRecording' -T application/json -d "$(get_body "$n")")
            oha_run "$WORK/warm.json" -z "${WARMUP}s" -c "$SAT_CONNECTIONS" "${get_args[@]}" "$SHIM_URL/"
            oha_run "$WORK/o.json" -z "${DURATION}s" -c "$SAT_CONNECTIONS" "${get_args[@]}" "$SHIM_URL/"
            record record-oha "$WORK/o.json" scenario=getlist op=get phase=saturation orders="$n" rep="$rep" concurrency="$SAT_CONNECTIONS"
            oha_run "$WORK/o.json" -n "$(list_requests "$n")" -c 1 "${list_args[@]}" "$SHIM_URL/"
            record record-oha "$WORK/o.json" scenario=getlist op=list phase=sequential orders="$n" rep="$rep" concurrency=1
            stop_pid "$SHIM_PID"
            log "  rep $rep, $n orders: $(python3 "$BENCH/report.py" last "$RAW" phase=saturation), $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    local smallest rate
    smallest=${GETLIST_SIZES%% *}
    rate=$(python3 "$BENCH/report.py" median "$RAW" ok_rps scenario=getlist op=get phase=saturation orders="$smallest")
    rate=$(python3 -c "print(max(1, round($rate * 0.5)))")
    log "  Get at a fixed $rate req/s (50 % of the saturation rate with $smallest orders)"
    for rep in $(seq "$REPS"); do
        for n in $(rotate "$rep" $GETLIST_SIZES); do
            store=$(seed "$n")
            start_shim "gl-$n" "$store"
            get_args=(-m POST -H 'x-sora-target: Sora_20161101.GetStartedRecording' -T application/json -d "$(get_body "$n")")
            oha_run "$WORK/warm.json" -z "${WARMUP}s" -c "$RATE_CONNECTIONS" -q "$rate" --latency-correction "${get_args[@]}" "$SHIM_URL/"
            oha_run "$WORK/o.json" -z "${DURATION}s" -c "$RATE_CONNECTIONS" -q "$rate" --latency-correction "${get_args[@]}" "$SHIM_URL/"
            record record-oha "$WORK/o.json" scenario=getlist op=get phase=rate orders="$n" rep="$rep" concurrency="$RATE_CONNECTIONS" target_rate="$rate"
            stop_pid "$SHIM_PID"
            log "  rate rep $rep, $n orders: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    stop_pid "$SIM_PID"
}

scenario_webhook() {
    log "session webhook reply time by active orders ($WEBHOOK_RATE events/s)"
    start_sim wh
    local n rep store bodies
    for n in $WEBHOOK_SIZES; do
        seed "$n" >/dev/null
        # 5,000 session.created bodies; oha picks one at random per request.
        python3 - "$n" >"$WORK/webhook-$n.lines" <<'EOF'
import json, random, sys
n = int(sys.argv[1])
rng = random.Random(20161101)
for i in range(5000):
    channel = f"channel-{rng.randrange(n):07d}" if n else f"nobody-{i}"
    print(json.dumps({"type": "session.created", "channel_id": channel, "session_id": f"bench-session-{i:05d}"}))
EOF
    done
    for rep in $(seq "$REPS"); do
        for n in $(rotate "$rep" $WEBHOOK_SIZES); do
            store=$(seed "$n")
            start_shim "wh-$n" "$store"
            local args=(-m POST -T application/json -Z "$WORK/webhook-$n.lines" -c "$RATE_CONNECTIONS" -q "$WEBHOOK_RATE" --latency-correction)
            oha_run "$WORK/warm.json" -z "${WARMUP}s" "${args[@]}" "$SHIM_URL/hooks/session"
            oha_run "$WORK/o.json" -z "${DURATION}s" "${args[@]}" "$SHIM_URL/hooks/session"
            record record-oha "$WORK/o.json" scenario=webhook phase=rate orders="$n" rep="$rep" concurrency="$RATE_CONNECTIONS" target_rate="$WEBHOOK_RATE"
            stop_pid "$SHIM_PID"
            log "  rep $rep, $n orders: $(python3 "$BENCH/report.py" last "$RAW")"
        done
    done
    # The replies must carry the recording keys when the channel has an order.
    if [ "${WEBHOOK_SIZES##* }" != 0 ]; then
        n=${WEBHOOK_SIZES##* }
        start_shim "wh-check" "$(seed "$n")"
        curl -fsS "$SHIM_URL/hooks/session" -d '{"type":"session.created","channel_id":"channel-0000001","session_id":"bench-check"}' \
            | grep -q '"recording":true' || die "session webhook reply lacks \"recording\": true"
        stop_pid "$SHIM_PID"
    fi
    stop_pid "$SIM_PID"
}

# ---------------------------------------------------------------- main
mkdir -p "$TOOLS" "$RESULTS" "${BENCH_WORK_DIR:-$BENCH/.work}"
WORK=$(mktemp -d "${BENCH_WORK_DIR:-$BENCH/.work}/run.XXXXXX")
RAW=$WORK/raw.jsonl
: >"$RAW"
begun=$SECONDS
log "work directory $WORK; mode $([ "$QUICK" = 1 ] && echo quick || echo full): $REPS repetition(s), ${DURATION}s per measurement"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
ensure_oha
wants passthrough && ensure_nginx
ensure_python
build
machine_meta
log "tools ready after $((SECONDS - begun)) s; measuring"
measure_begun=$SECONDS
wants passthrough && scenario_passthrough
wants translated && scenario_translated
wants memory && scenario_memory
wants getlist && scenario_getlist
wants webhook && scenario_webhook
log "measurements took $((SECONDS - measure_begun)) s"

cp "$RAW" "$RESULTS/raw.jsonl"
python3 "$BENCH/report.py" finalize "$RAW" "$WORK/meta.json" "$RESULTS"
rm -f "$RESULTS/passthrough.png"
if wants passthrough; then "$PLOT_PY" "$BENCH/plot.py" "$RESULTS/results.json" "$RESULTS/passthrough.png"; fi
log "done in $((SECONDS - begun)) s: $RESULTS/results.md, results.json, raw.jsonl$(wants passthrough && echo ', passthrough.png')"
cat "$RESULTS/results.md"
