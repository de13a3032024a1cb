#!/usr/bin/env python3
"""Results of scripts/bench-compare: record one run, then print the table.

`record` turns one load-tool run into one JSON line of results.jsonl: the
tool's last stdout line (its --json object) with the server, test, player
count and round added, or an error line carrying the tail of its stderr, so
a failed run shows as a row instead of stopping the benchmark.

`table` reads results.jsonl and prints ONE markdown table (also written to
--out): fan-out rows per server x players (median over rounds), then the
capacity rows, the ingest rows (server x publishers) and the idle-connection
rows, under a header saying when, on
what machine and against which versions it ran. Every fan-out row also gives
its CPU-s/GB as a multiple of the floor's (`tincan-bench floor`, the kernel's
cost of the same traffic) at the same player count, when the floor ran.
"""

import argparse
import json
import statistics
import sys

ORDER = {
    "tincan": 0,
    "tincan-2t": 1,
    "tincan-mio": 2,
    "tincan-mw20": 3,
    "tincan-throughput": 4,
    "nginx": 6,
    "nms": 7,
    "floor": 8,
    "floor-batched": 9,
    "floor-uring": 10,
}
NAMES = {
    "tincan": "tincan",
    "tincan-2t": "tincan, 2 threads",
    "tincan-mio": "tincan (mio)",
    "tincan-mw20": "tincan, 20 ms merge window",
    "tincan-throughput": "tincan, throughput mode",
    "nginx": "nginx-rtmp",
    "nms": "node-media-server",
    "floor": "floor (one write per frame)",
    "floor-batched": "floor, batched writes",
    "floor-uring": "floor, io_uring (one submission per frame)",
}


def order(server):
    # tincan-wmN (the trade curve) after the named variants, by N.
    if server.startswith("tincan-wm") and server[9:].isdigit():
        return 5 + int(server[9:]) / 1e6
    return ORDER.get(server, 5.5)


def name(server):
    if server.startswith("tincan-wm") and server[9:].isdigit():
        return f"tincan, writes merged up to {server[9:]} ms"
    return NAMES.get(server, server)


def last_json_line(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def cmd_record(a):
    with open(a.stdout, errors="replace") as f:
        out = f.read()
    with open(a.stderr, errors="replace") as f:
        err = f.read()
    row = {
        "server": a.server,
        "test": a.test,
        "players_requested": a.players,
        "round": a.round,
        "input": a.input,
    }
    result = last_json_line(out)
    if a.status != 0 or result is None:
        tail = [l for l in err.strip().splitlines() if l.strip()][-3:]
        why = " / ".join(tail) or "no output"
        row["error"] = f"exit {a.status}: {why}"[:300]
        if result is not None:
            row["result"] = result
    else:
        row["result"] = result
    with open(a.out, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def get(result, *path):
    """A nested field, or None; `latency_ms.p99` style paths."""
    v = result
    for p in path:
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and digits == 0:
        return f"{v:.0f}"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def pct(v):
    # The tool reports completeness as a fraction.
    return "–" if v is None else f"{100 * v:.1f} %"


FANOUT_COLUMNS = [
    # header, extractor(result) -> number, digits
    ("delivered Gbit/s", lambda r: get(r, "delivered_gbit_s"), 3),
    ("server CPU-s", lambda r: get(r, "server_cpu_s"), 2),
    ("CPU-s/GB", lambda r: get(r, "cpu_s_per_gb"), 2),
    ("first frame p50 ms", lambda r: get(r, "first_frame_ms", "p50"), 1),
    ("first frame keyframe %", lambda r: get(r, "first_frame_keyframe_pct"), 0),
    ("latency p50 ms", lambda r: get(r, "latency_ms", "p50"), 1),
    ("latency p99 ms", lambda r: get(r, "latency_ms", "p99"), 1),
    ("min complete", lambda r: get(r, "completeness_min"), None),
    ("players <99 %", lambda r: get(r, "players_below_99pct"), 0),
    ("failed", lambda r: get(r, "players_failed"), 0),
    ("peak RSS MB", lambda r: mb(get(r, "server_peak_rss_kb")), 1),
    ("tool CPU (cores)", lambda r: get(r, "tool_cores"), 2),
    # Seconds the server's threads were runnable but waited for a CPU in the
    # window (summed over threads): any contention, the tool's included.
    ("server run-queue wait s", lambda r: get(r, "server_runqueue_wait_s"), 2),
]


def mb(kb):
    return None if kb is None else kb / 1024


def cell(value, digits):
    if digits is None:
        return pct(value)
    if digits == 0 and value is not None:
        return f"{value:.0f}"
    return fmt(value, digits)


def fanout_table(rows, test, lines):
    groups = {}
    for row in rows:
        if row.get("test") != test:
            continue
        key = (row["players_requested"], order(row["server"]), row["server"])
        groups.setdefault(key, []).append(row)
    if not groups:
        return
    floors = floor_figures(groups)
    head = ["server", "players", "runs"] + [c[0] for c in FANOUT_COLUMNS] + ["CPU-s/GB × floor", "× floor batched"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(FANOUT_COLUMNS) + 2)) + "|")
    errors = []
    for (players, _, server), group in sorted(groups.items()):
        ok = [g["result"] for g in group if "error" not in g and "result" in g]
        failed = [g for g in group if "error" in g]
        runs = f"{len(ok)}/{len(group)}"
        if not ok:
            msg = failed[0]["error"] if failed else "no result"
            lines.append(
                f"| {name(server)} | {players} | {runs} | "
                + f"**error**: {msg.replace('|', '/')} |"
                + " |" * (len(FANOUT_COLUMNS) + 1)
            )
            continue
        cells = [cell(median([fn(r) for r in ok]), d) for _, fn, d in FANOUT_COLUMNS]
        per_gb = median([get(r, "cpu_s_per_gb") for r in ok])
        for floor in ("floor", "floor-batched"):
            f = floors.get((players, floor))
            cells.append(f"{per_gb / f:.2f}×" if per_gb is not None and f else "–")
        lines.append(f"| {name(server)} | {players} | {runs} | " + " | ".join(cells) + " |")
        for g in failed:
            errors.append(f"{name(server)} {players} round {g['round']} failed, left out of the median: {g['error']}")
        for g in group:
            why = g.get("result", {}).get("first_failure") if isinstance(g.get("result"), dict) else None
            if why:
                errors.append(f"{name(server)} {players} round {g['round']}: first player failure: {why}")
    lines.append("")
    ratio_line(groups, lines)
    for e in errors:
        lines.append(f"- {e}")
    if errors:
        lines.append("")


def floor_figures(groups):
    """(players, floor server) -> the floor's median CPU-s/GB."""
    out = {}
    for (players, _, server), group in groups.items():
        if server in ("floor", "floor-batched"):
            ok = [g["result"] for g in group if "error" not in g and "result" in g]
            v = median([get(r, "cpu_s_per_gb") for r in ok])
            if v:
                out[(players, server)] = v
    return out


def ratio_line(groups, lines):
    """The issue's main target in one line per tincan variant: its CPU-s/GB
    over nginx-rtmp's; then every server's over each floor's."""
    per_n = {}
    lost = set()
    for (players, _, server), group in groups.items():
        ok = [g["result"] for g in group if "error" not in g and "result" in g]
        per_n.setdefault(players, {})[server] = median([get(r, "cpu_s_per_gb") for r in ok])
        if any((get(r, "players_failed") or 0) > 0 or (get(r, "players_below_99pct") or 0) > 0 for r in ok):
            lost.add((players, server))
    variants = sorted({s for n in per_n.values() for s in n if s.startswith("tincan")}, key=order)
    for variant in variants:
        parts = []
        for players in sorted(per_n):
            t, n = per_n[players].get(variant), per_n[players].get("nginx")
            if t is not None and n:
                # CPU per delivered GB only compares like with like when both
                # servers kept every player.
                who = [name(s) for s in (variant, "nginx") if (players, s) in lost]
                note = f" (not like for like: {' and '.join(who)} lost players)" if who else ""
                parts.append(f"{players} players {t / n:.2f}x{note}")
        if parts:
            lines.append(f"CPU-s/GB, {name(variant)} / nginx-rtmp (target <= 0.50x): " + ", ".join(parts) + ".")
    for floor in ("floor", "floor-batched"):
        for server in sorted({s for n in per_n.values() for s in n if s != floor}, key=order):
            parts = []
            for players in sorted(per_n):
                v, f = per_n[players].get(server), per_n[players].get(floor)
                if v is not None and f:
                    parts.append(f"{players} players {v / f:.2f}x")
            if parts:
                lines.append(f"CPU-s/GB, {name(server)} / {name(floor)}: " + ", ".join(parts) + ".")
    if lines and lines[-1] != "":
        lines.append("")


INGEST_COLUMNS = [
    # header, extractor(result) -> number, digits (None: a fraction as %)
    ("publishing", lambda r: get(r, "publishers_publishing"), 0),
    ("received Gbit/s", lambda r: get(r, "received_gbit_s"), 3),
    ("server CPU-s", lambda r: get(r, "server_cpu_s"), 2),
    # The headline for ingest.
    ("CPU-s/received GB", lambda r: get(r, "cpu_s_per_received_gb"), 2),
    ("latency p50 ms", lambda r: get(r, "latency_ms", "p50"), 1),
    ("latency p99 ms", lambda r: get(r, "latency_ms", "p99"), 1),
    ("latency max ms", lambda r: get(r, "latency_ms", "max"), 1),
    ("min complete", lambda r: get(r, "completeness_min"), None),
    ("median complete", lambda r: get(r, "completeness_median"), None),
    ("players <99 %", lambda r: get(r, "players_below_99pct"), 0),
    ("publishers failed", lambda r: get(r, "publishers_failed"), 0),
    ("players failed", lambda r: get(r, "players_failed"), 0),
    ("peak RSS MB", lambda r: mb(get(r, "server_peak_rss_kb")), 1),
    ("tool CPU (cores)", lambda r: get(r, "tool_cores"), 2),
    # How late the tool's publishers sent, at worst: a saturated tool.
    ("publish lag max ms", lambda r: get(r, "publish_lag_max_ms"), 1),
    ("server run-queue wait s", lambda r: get(r, "server_runqueue_wait_s"), 2),
]


def ingest_table(rows, lines):
    groups = {}
    for row in rows:
        if row.get("test") == "ingest":
            key = (row["players_requested"], order(row["server"]), row["server"])
            groups.setdefault(key, []).append(row)
    if not groups:
        return
    head = ["server", "publishers", "runs"] + [c[0] for c in INGEST_COLUMNS]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * len(INGEST_COLUMNS)) + "|")
    notes = []
    for (publishers, _, server), group in sorted(groups.items()):
        ok = [g["result"] for g in group if "error" not in g and "result" in g]
        runs = f"{len(ok)}/{len(group)}"
        if not ok:
            msg = next((g["error"] for g in group if "error" in g), "no result")
            lines.append(
                f"| {name(server)} | {publishers} | {runs} | **error**: {msg.replace('|', '/')} |"
                + " |" * (len(INGEST_COLUMNS) - 1)
            )
            continue
        cells = [cell(median([fn(r) for r in ok]), d) for _, fn, d in INGEST_COLUMNS]
        lines.append(f"| {name(server)} | {publishers} | {runs} | " + " | ".join(cells) + " |")
        for r in ok:
            for key, who in (("first_publisher_failure", "publisher"), ("first_failure", "player")):
                if isinstance(r.get(key), str):
                    notes.append(f"{name(server)} {publishers}: first {who} failure: {r[key]}")
    lines.append("")
    for n in notes:
        lines.append(f"- {n}")
    if notes:
        lines.append("")


IDLE_FIELDS = [
    ("connections", ["connections", "connections_open", "connected"]),
    ("RSS before MB", ["server_rss_before_kb"]),
    ("RSS after MB", ["server_rss_after_kb"]),
    ("bytes per idle connection", ["bytes_per_connection", "server_bytes_per_connection", "rss_bytes_per_connection"]),
]


def first_field(result, names):
    for n in names:
        v = get(result, n)
        if v is not None:
            return v
    # Be lenient about the exact name of the per-connection figure.
    if "bytes per" in names[0] or names[0].startswith("bytes_per"):
        for k, v in result.items():
            if "per_conn" in k and isinstance(v, (int, float)):
                return v
    return None


def idle_table(rows, lines):
    idle = [r for r in rows if r.get("test") == "idle"]
    if not idle:
        return
    lines.append("| server | idle connections asked | " + " | ".join(f[0] for f in IDLE_FIELDS) + " |")
    lines.append("|---|---:|" + "---:|" * len(IDLE_FIELDS))
    for row in sorted(idle, key=lambda r: order(r["server"])):
        server_name = name(row["server"])
        if "error" in row:
            lines.append(
                f"| {server_name} | {row['players_requested']} | **error**: {row['error'].replace('|', '/')} |"
                + " |" * (len(IDLE_FIELDS) - 1)
            )
            continue
        r = row["result"]
        vals = []
        for label, names in IDLE_FIELDS:
            v = first_field(r, names)
            if label.endswith("MB"):
                vals.append(fmt(mb(v), 1))
            else:
                vals.append(fmt(v, 0) if v is not None else "–")
        lines.append(f"| {server_name} | {row['players_requested']} | " + " | ".join(vals) + " |")
    lines.append("")


def check_table(rows, lines):
    checks = [r for r in rows if r.get("test") == "check"]
    if not checks:
        return
    lines.append("| server | ffmpeg publish + ffprobe play |")
    lines.append("|---|---|")
    for row in sorted(checks, key=lambda r: order(r["server"])):
        server_name = name(row["server"])
        if "error" in row:
            lines.append(f"| {server_name} | **error**: {row['error'].replace('|', '/')} |")
        else:
            lines.append(f"| {server_name} | ok: {row['result'].get('streams', '').strip()} |")
    lines.append("")


def cmd_table(a):
    meta = dict(m.split("=", 1) for m in a.meta)
    rows = []
    with open(a.inp) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    lines = [f"### tincan vs nginx-rtmp vs node-media-server, {meta.get('date', '')}", ""]
    lines.append(
        f"Machine: {meta.get('nproc', '?')} cores ({meta.get('cpu', '?')}), Linux {meta.get('kernel', '?')}, loopback; load average {meta.get('load', '?')}.  "
    )
    lines.append(
        f"Servers: tincan {meta.get('tincan', '?')}; {meta.get('nginx', '?')} (one worker); {meta.get('nms', '?')}.  "
    )
    lines.append(f"Run: {meta.get('run', '?')}.  ")
    if "pinned" in meta:
        lines.append(f"Pinned: {meta['pinned']}.  ")
    lines.append(f"Inputs: {meta.get('inputs', '?')}.")
    lines.append("")
    if any(r.get("test") == "fanout" for r in rows):
        lines.append("**Fan-out** (one publisher, N players; medians over rounds):")
        lines.append("")
        fanout_table(rows, "fanout", lines)
    if any(r.get("test") == "capacity" for r in rows):
        lines.append("**Capacity** (500 kbit/s stream):")
        lines.append("")
        fanout_table(rows, "capacity", lines)
    if any(r.get("test") == "ingest" for r in rows):
        lines.append("**Ingest** (N publishers of the 720p30 input, each to its own stream with one player):")
        lines.append("")
        ingest_table(rows, lines)
    if any(r.get("test") == "idle" for r in rows):
        lines.append("**Idle connections** (handshake + connect, then silent):")
        lines.append("")
        idle_table(rows, lines)
    check_table(rows, lines)
    text = "\n".join(lines)
    with open(a.out, "w") as f:
        f.write(text + "\n")
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--server", required=True)
    r.add_argument("--test", required=True)
    r.add_argument("--players", type=int, required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--input", required=True)
    r.add_argument("--stdout", required=True)
    r.add_argument("--stderr", required=True)
    r.add_argument("--status", type=int, required=True)
    t = sub.add_parser("table")
    t.add_argument("--in", dest="inp", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--meta", action="append", default=[])
    a = p.parse_args()
    if a.cmd == "record":
        cmd_record(a)
    else:
        cmd_table(a)


if __name__ == "__main__":
    sys.exit(main())
