#!/usr/bin/env python3
"""Result plumbing for bench/run.sh (standard library only).

Subcommands:
  record-oha FILE key=value...      one oha JSON report -> one JSON line on stdout
  record-pairs FILE key=value...    one legacy_pairs JSON line -> one JSON line on stdout
  record-json FILE key=value...     any JSON object (memory probe, list probe) -> one line
  median RAW.jsonl FIELD key=value  median of FIELD over the matching records (for rates)
  last RAW.jsonl [key=value...]     one-line summary of the last matching record (progress log)
  finalize RAW.jsonl META.json OUT_DIR   results.json + results.md
  executables CARGO_JSON NAME...    paths of the named bench executables from cargo's JSON
"""

import json
import statistics
import sys
from pathlib import Path

PERCENTILES = ["p10", "p25", "p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99"]


# The passthrough variants in table order, with their short row names.
PASSTHROUGH_PATHS = (("direct", "direct"), ("shim", "shim"), ("bare", "bare hyper proxy"), ("nginx", "nginx"))

def labels(pairs):
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def record_oha(path, extra):
    with open(path) as handle:
        report = json.load(handle)
    summary = report.get("summary", {})
    status = report.get("statusCodeDistribution", {}) or {}
    errors = report.get("errorDistribution", {}) or {}
    ok = sum(n for code, n in status.items() if str(code).startswith("2"))
    requests = sum(status.values()) + sum(errors.values())
    latency = {}
    for key, seconds in (report.get("latencyPercentiles") or {}).items():
        latency[key] = None if seconds is None else round(seconds * 1000.0, 4)
    for name, key in (("max", "slowest"), ("mean", "average")):
        value = summary.get(key)
        latency[name] = None if value is None else round(value * 1000.0, 4)
    record = dict(extra)
    record.update(
        {
            "tool": "oha",
            "requests": requests,
            "ok": ok,
            "errors": requests - ok,
            "rps": summary.get("requestsPerSec"),
            "ok_rps": ok / summary["total"] if summary.get("total") else None,
            "seconds": summary.get("total"),
            "bytes_per_request": summary.get("sizePerRequest"),
            "status": status,
            "error_kinds": errors,
            "latency_ms": latency,
        }
    )
    return record


def record_pairs(path, extra):
    with open(path) as handle:
        line = [line for line in handle if line.strip()][-1]
    report = json.loads(line)
    record = dict(extra)
    record.update(
        {
            "tool": "legacy_pairs",
            "requests": report["pairs"],
            "ok": report["pairs"] - report["errors"],
            "errors": report["errors"],
            "rps": report["pairs_per_sec"],
            "ok_rps": (report["pairs"] - report["errors"]) / report["seconds"] if report["seconds"] else None,
            "seconds": report["seconds"],
            "status": report["outcomes"],
            "latency_ms": report["latency_ms"],
            "start_ms": report["start_ms"],
            "stop_ms": report["stop_ms"],
        }
    )
    return record


def record_json(path, extra):
    with open(path) as handle:
        line = [line for line in handle if line.strip()][-1]
    record = dict(extra)
    record.update(json.loads(line))
    return record


def load(raw):
    with open(raw) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def matching(records, **want):
    return [r for r in records if all(r.get(k) == v for k, v in want.items())]


def field(record, dotted):
    value = record
    for part in dotted.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def span(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def summarize(records, fields):
    """Median (and min/max) over repetitions of each field."""
    out = {"repetitions": len(records)}
    for name in fields:
        values = [field(r, name) for r in records]
        lo, hi = span(values)
        out[name] = {"median": med(values), "min": lo, "max": hi}
    out["requests"] = sum(r.get("requests", 0) or 0 for r in records)
    out["errors"] = sum(r.get("errors", 0) or 0 for r in records)
    return out


LAT_FIELDS = ["rps", "ok_rps"] + ["latency_ms/" + p for p in ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"]]


def build(records, meta):
    results = {"meta": meta, "scenarios": {}}
    s = results["scenarios"]

    # passthrough
    pt = {}
    for phase in ("saturation", "rate", "light"):
        rows = {}
        for variant in ("direct", "shim", "bare", "nginx"):
            recs = matching(records, scenario="passthrough", phase=phase, variant=variant)
            if recs:
                rows[variant] = summarize(recs, LAT_FIELDS + ["latency_ms/" + p for p in PERCENTILES])
                rows[variant]["target_rate"] = recs[0].get("target_rate")
                rows[variant]["concurrency"] = recs[0].get("concurrency")
        if rows:
            pt[phase] = rows
    if pt:
        s["passthrough"] = pt

    # translated
    tr = {}
    pair_fields = LAT_FIELDS + ["start_ms/p50", "start_ms/p99", "stop_ms/p50", "stop_ms/p99"]
    for phase in ("saturation", "rate"):
        rows = {}
        for variant in ("native", "legacy"):
            recs = matching(records, scenario="translated", phase=phase, variant=variant)
            if recs:
                rows[variant] = summarize(recs, pair_fields)
                rows[variant]["target_rate"] = recs[0].get("target_rate")
                rows[variant]["concurrency"] = recs[0].get("concurrency")
        if rows:
            tr[phase] = rows
    if tr:
        s["translated"] = tr

    # get / list
    gl = {}
    for (op, phase) in (("get", "saturation"), ("get", "rate"), ("list", "sequential")):
        rows = {}
        for orders in sorted({r["orders"] for r in matching(records, scenario="getlist", op=op, phase=phase)}):
            recs = matching(records, scenario="getlist", op=op, phase=phase, orders=orders)
            rows[str(orders)] = summarize(recs, LAT_FIELDS + ["bytes_per_request"])
            rows[str(orders)]["target_rate"] = recs[0].get("target_rate")
            rows[str(orders)]["concurrency"] = recs[0].get("concurrency")
        if rows:
            gl[f"{op}_{phase}"] = rows
    if gl:
        s["getlist"] = gl

    # webhook
    wh = {}
    for orders in sorted({r["orders"] for r in matching(records, scenario="webhook")}):
        recs = matching(records, scenario="webhook", orders=orders)
        wh[str(orders)] = summarize(recs, LAT_FIELDS)
        wh[str(orders)]["target_rate"] = recs[0].get("target_rate")
    if wh:
        s["webhook"] = {"rate": wh}

    # memory
    mem = {}
    for r in matching(records, scenario="memory"):
        mem[str(r["orders"])] = {k: v for k, v in r.items() if k not in ("scenario",)}
    if mem:
        s["memory"] = mem

    results["raw"] = records
    return results


def fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, (int,)) or (isinstance(value, float) and value >= 1000):
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def cell(stat, digits=2, show_range=False):
    if not stat or stat.get("median") is None:
        return "–"
    text = fmt(stat["median"], digits)
    if show_range and stat.get("min") is not None and stat["min"] != stat["max"]:
        text += f" ({fmt(stat['min'], digits)}–{fmt(stat['max'], digits)})"
    return text


def mib(n):
    return "–" if n is None else f"{n / 1048576:.1f}"


def pinning(params):
    if not params.get("pin"):
        return "none (load generator and servers share every CPU)"
    gen, _, srv = (params.get("pinning") or "").partition(" / ")
    return f"load generator `{gen}`, servers (sora-sim, shim, bare proxy, nginx) `{srv}`"


def markdown(results):
    meta = results["meta"]
    s = results["scenarios"]
    m = meta.get("machine", {})
    p = meta.get("params", {})
    out = []
    label = "QUICK SMOKE RUN — not for quoting" if meta.get("quick") else "full run"
    out.append(f"# sora-legacy-shim benchmark results ({label})\n")
    out.append(
        f"- date: {meta.get('date')}; commit: `{meta.get('commit')}`{' (dirty tree)' if meta.get('dirty') else ''}"
    )
    out.append(
        f"- machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory')} RAM, kernel {m.get('kernel')}"
    )
    out.append(f"- tools: {meta.get('tools')}")
    out.append(
        f"- repetitions: {p.get('reps')}, {p.get('duration')} s per measurement (after {p.get('warmup')} s warm-up per process); "
        f"CPU pinning: {pinning(p)}"
    )
    out.append("- cells are the median over repetitions; `(a–b)` is the range over repetitions; latencies in ms; "
               "latency under a fixed rate counts from the moment each request was due (`oha -q RATE --latency-correction`), "
               "so time spent waiting for a free connection is included.\n")

    pt = s.get("passthrough")
    if pt:
        out.append("## Passthrough (`Sora_20171010.GetStatsReport`)\n")
        sat = pt.get("saturation", {})
        if sat:
            base = (sat.get("direct") or {}).get("ok_rps", {}).get("median")
            c = next(iter(sat.values())).get("concurrency")
            out.append(f"Saturation (closed loop, {c} connections):\n")
            out.append("| path | req/s | vs direct | p50 | p99 | non-2xx / errors |")
            out.append("|---|---|---|---|---|---|")
            for variant, name in (("direct", "client → sora-sim"), ("shim", "client → shim → sora-sim"),
                                  ("bare", "client → bare hyper proxy → sora-sim"), ("nginx", "client → nginx → sora-sim")):
                row = sat.get(variant)
                if not row:
                    continue
                rps = row["ok_rps"]["median"]
                rel = f"{rps / base * 100:.0f} %" if base and rps else "–"
                out.append(f"| {name} | {cell(row['ok_rps'], 0, True)} | {rel} | {cell(row['latency_ms/p50'])} | "
                           f"{cell(row['latency_ms/p99'])} | {row['errors']} of {row['requests']} |")
            out.append("")
        rate = pt.get("rate", {})
        if rate:
            r0 = next(iter(rate.values()))
            out.append(f"Fixed rate {fmt(r0.get('target_rate'), 0)} req/s (50 % of the shim's saturation rate, same for all four; "
                       f"open loop, up to {r0.get('concurrency')} connections):\n")
            out.append("| path | achieved req/s | p50 | p90 | p99 | p99.9 | max | non-2xx / errors |")
            out.append("|---|---|---|---|---|---|---|---|")
            for variant, name in PASSTHROUGH_PATHS:
                row = rate.get(variant)
                if not row:
                    continue
                out.append(f"| {name} | {cell(row['ok_rps'], 0)} | {cell(row['latency_ms/p50'], 3)} | {cell(row['latency_ms/p90'], 3)} | "
                           f"{cell(row['latency_ms/p99'], 3, True)} | {cell(row['latency_ms/p99.9'], 3, True)} | "
                           f"{cell(row['latency_ms/max'], 1)} | {row['errors']} of {row['requests']} |")
            out.append("\n![passthrough latency percentiles](passthrough.png)\n")
        light = pt.get("light", {})
        if light:
            l0 = next(iter(light.values()))
            base = light.get("direct") or {}
            out.append(f"Light load, {fmt(l0.get('target_rate'), 0)} req/s over {l0.get('concurrency')} connections (open loop), "
                       "the kind of traffic a monitoring exporter sends; *added* is the path's latency minus direct's, "
                       "medians over repetitions:\n")
            out.append("| path | p50 | p90 | p99 | p99.9 | added at p50 | added at p99 | non-2xx / errors |")
            out.append("|---|---|---|---|---|---|---|---|")
            for variant, name in PASSTHROUGH_PATHS:
                row = light.get(variant)
                if not row:
                    continue
                added = []
                for p in ("p50", "p99"):
                    mine, theirs = row[f"latency_ms/{p}"]["median"], (base.get(f"latency_ms/{p}") or {}).get("median")
                    added.append("–" if variant == "direct" or mine is None or theirs is None else f"{mine - theirs:+.3f}")
                out.append(f"| {name} | {cell(row['latency_ms/p50'], 3)} | {cell(row['latency_ms/p90'], 3)} | "
                           f"{cell(row['latency_ms/p99'], 3, True)} | {cell(row['latency_ms/p99.9'], 3, True)} | "
                           f"{added[0]} | {added[1]} | {row['errors']} of {row['requests']} |")
            out.append("")

    tr = s.get("translated")
    if tr:
        out.append("## Translated: StartRecording + StopRecording pairs\n")
        out.append("`legacy` = `Sora_20161101.StartRecording` + `StopRecording` through the shim (store write, upstream call each); "
                   "`native` = `Sora_20231220.StartRecording` + `StopRecording` sent straight to sora-sim. "
                   "Sessions pre-created on a pool of channels; one pair at a time per channel.\n")
        sat = tr.get("saturation", {})
        if sat:
            c = next(iter(sat.values())).get("concurrency")
            out.append(f"Saturation ({c} closed-loop workers):\n")
            out.append("| API | pairs/s | pair p50 | pair p99 | failed pairs |")
            out.append("|---|---|---|---|---|")
            for variant in ("native", "legacy"):
                row = sat.get(variant)
                if row:
                    out.append(f"| {variant} | {cell(row['ok_rps'], 0, True)} | {cell(row['latency_ms/p50'])} | "
                               f"{cell(row['latency_ms/p99'])} | {row['errors']} of {row['requests']} |")
            out.append("")
        rate = tr.get("rate", {})
        if rate:
            r0 = next(iter(rate.values()))
            out.append(f"Fixed rate {fmt(r0.get('target_rate'), 1)} pairs/s (50 % of the shim's saturation rate, same for both; open loop):\n")
            out.append("| API | pairs/s | pair p50 | pair p99 | pair p99.9 | Start p50 / p99 | Stop p50 / p99 | failed pairs |")
            out.append("|---|---|---|---|---|---|---|---|")
            for variant in ("native", "legacy"):
                row = rate.get(variant)
                if row:
                    out.append(f"| {variant} | {cell(row['ok_rps'], 0)} | {cell(row['latency_ms/p50'], 3)} | {cell(row['latency_ms/p99'], 3, True)} | "
                               f"{cell(row['latency_ms/p99.9'], 3)} | {cell(row['start_ms/p50'], 3)} / {cell(row['start_ms/p99'], 3)} | "
                               f"{cell(row['stop_ms/p50'], 3)} / {cell(row['stop_ms/p99'], 3)} | {row['errors']} of {row['requests']} |")
            out.append("")

    gl = s.get("getlist")
    if gl:
        out.append("## GetStartedRecording / ListStartedRecording through the shim, by orders in the store\n")
        out.append("The baseline is the smallest store, measured in the same run, interleaved.\n")
        sat = gl.get("get_saturation", {})
        rate = gl.get("get_rate", {})
        if sat or rate:
            r0 = next(iter(rate.values()), {}) if rate else {}
            c = next(iter(sat.values()), {}).get("concurrency") if sat else None
            out.append(f"`Sora_20161101.GetStartedRecording` (one channel with an order): saturation with {c} connections, "
                       f"and latency at a fixed {fmt(r0.get('target_rate'), 0)} req/s (50 % of the smallest store's saturation rate):\n")
            out.append("| orders | req/s at saturation | p50 | p90 | p99 | p99.9 | max | non-2xx / errors |")
            out.append("|---|---|---|---|---|---|---|---|")
            for orders in sorted(set(sat) | set(rate), key=int):
                a, b = sat.get(orders, {}), rate.get(orders, {})
                errs = (a.get("errors", 0) or 0) + (b.get("errors", 0) or 0)
                reqs = (a.get("requests", 0) or 0) + (b.get("requests", 0) or 0)
                out.append(f"| {int(orders):,} | {cell(a.get('ok_rps'), 0, True)} | {cell(b.get('latency_ms/p50'), 3)} | "
                           f"{cell(b.get('latency_ms/p90'), 3)} | {cell(b.get('latency_ms/p99'), 3, True)} | "
                           f"{cell(b.get('latency_ms/p99.9'), 3)} | {cell(b.get('latency_ms/max'), 1)} | {errs} of {reqs} |")
            out.append("")
        lst = gl.get("list_sequential", {})
        if lst:
            out.append("`Sora_20161101.ListStartedRecording` (every order in the answer), one request at a time:\n")
            out.append("| orders | requests | body size | p50 ms | max ms | non-2xx / errors |")
            out.append("|---|---|---|---|---|---|")
            for orders in sorted(lst, key=int):
                row = lst[orders]
                size = row.get("bytes_per_request", {}).get("median")
                size_text = "–" if size is None else (f"{size / 1048576:.1f} MiB" if size >= 1048576 else f"{size / 1024:.1f} KiB")
                out.append(f"| {int(orders):,} | {row['requests']} | {size_text} | {cell(row['latency_ms/p50'], 1)} | "
                           f"{cell(row['latency_ms/max'], 1)} | {row['errors']} of {row['requests']} |")
            out.append("")

    wh = s.get("webhook", {}).get("rate")
    if wh:
        r0 = next(iter(wh.values()))
        out.append(f"## Session webhook (`POST /hooks/session`, `session.created`) reply time\n")
        out.append(f"Fixed {fmt(r0.get('target_rate'), 0)} events/s, open loop; with orders, every event names a random channel "
                   "that has an order (so the reply gains the recording keys and a leg is written after it); with 0, no channel has one.\n")
        out.append("| active orders | p50 | p90 | p99 | p99.9 | max | non-2xx / errors |")
        out.append("|---|---|---|---|---|---|---|")
        for orders in sorted(wh, key=int):
            row = wh[orders]
            out.append(f"| {int(orders):,} | {cell(row['latency_ms/p50'], 3)} | {cell(row['latency_ms/p90'], 3)} | "
                       f"{cell(row['latency_ms/p99'], 3, True)} | {cell(row['latency_ms/p99.9'], 3)} | "
                       f"{cell(row['latency_ms/max'], 1)} | {row['errors']} of {row['requests']} |")
        out.append("")

    mem = s.get("memory")
    if mem:
        out.append("## Memory and store size\n")
        out.append("Peak RSS (`VmHWM` from `/proc/PID/status`) of the shim process after start-up and its first reconciler passes "
                   "(idle), and again after one `GetStartedRecording` and one `ListStartedRecording`; the store's size on disk "
                   "(database + WAL + shared memory files).\n")
        out.append("| orders | peak RSS idle (MiB) | RSS idle (MiB) | peak RSS after List (MiB) | List time (s) | List body | store on disk (MiB) | seeding (s) |")
        out.append("|---|---|---|---|---|---|---|---|")
        for orders in sorted(mem, key=int):
            row = mem[orders]
            body = row.get("list_bytes")
            body_text = "–" if body is None else f"{body / 1048576:.1f} MiB"
            out.append(f"| {int(orders):,} | {mib(row.get('hwm_idle_bytes'))} | {mib(row.get('rss_idle_bytes'))} | "
                       f"{mib(row.get('hwm_after_list_bytes'))} | {fmt(row.get('list_seconds'), 2)} | {body_text} | "
                       f"{mib(row.get('store_bytes'))} | {fmt(row.get('seed_seconds'), 1)} |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv):
    command = argv[1]
    if command in ("record-oha", "record-pairs", "record-json"):
        fn = {"record-oha": record_oha, "record-pairs": record_pairs, "record-json": record_json}[command]
        print(json.dumps(fn(argv[2], labels(argv[3:])), sort_keys=True))
    elif command == "median":
        records = matching(load(argv[2]), **labels(argv[4:]))
        value = med([field(r, argv[3]) for r in records])
        if value is None:
            sys.exit("no matching records for the median")
        print(f"{value:.3f}")
    elif command == "last":
        records = matching(load(argv[2]), **labels(argv[3:]))
        if records:
            r = records[-1]
            lat = r.get("latency_ms", {})
            unit = "pairs/s" if r.get("tool") == "legacy_pairs" else "req/s"
            text = f"{fmt(r.get('ok_rps'), 0)} {unit}, p50 {fmt(lat.get('p50'), 3)} p99 {fmt(lat.get('p99'), 3)} p99.9 {fmt(lat.get('p99.9'), 3)} ms"
            if r.get("bytes_per_request"):
                text += f", {r['bytes_per_request']:,} B/answer"
            print(text + f", {r.get('errors')} errors of {r.get('requests')}")
    elif command == "finalize":
        records = load(argv[2])
        with open(argv[3]) as handle:
            meta = json.load(handle)
        out = Path(argv[4])
        results = build(records, meta)
        (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        (out / "results.md").write_text(markdown(results))
    elif command == "executables":
        wanted = set(argv[3:])
        found = {}
        with open(argv[2]) as handle:
            for line in handle:
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if message.get("reason") == "compiler-artifact" and message.get("executable"):
                    name = message["target"]["name"]
                    if name in wanted:
                        found[name] = message["executable"]
        missing = wanted - set(found)
        if missing:
            sys.exit(f"cargo built no executable for {sorted(missing)}")
        for name in argv[3:]:
            print(found[name])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
