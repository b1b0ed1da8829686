#!/usr/bin/env python3
"""The tables of scripts/bench/interleaved.sh, over one or more of its OUT
directories (their rounds taken together, in the order given):

    scripts/bench/interleaved-summary.py OUT...

Per run and round: delivery p99 (ms), throughput (deliveries or deliveries
per second) and the 1-minute load average before the run, for side A and
side B; then the medians per side and B's difference from A in percent.
Runs that were not clean (something lost, refused or closed) are marked
and still counted: a lost message is part of what a server did under that
load.
"""
import glob
import json
import os
import statistics
import sys

# (p99, throughput) of each mode's JSON line
FIGURES = {
    "dm": (("delivery_latency", "p99_ms"), ("delivered_per_s",)),
    "fanout": (("latency", "p99_ms"), ("deliveries_per_s",)),
}


def get(d, path):
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def number(v):
    return "–" if v is None else f"{v:,.0f}"


def ms(v):
    return "–" if v is None else f"{v:,.1f}"


def pct(a, b):
    return f"{(b - a) / a * 100:+.1f} %" if a and b is not None else "–"


def median(xs, key):
    vals = [x[key] for x in xs if x[key] is not None]
    return statistics.median(vals) if vals else None


def main(dirs):
    table = {}
    servers = {}
    rounds = 0
    for out in dirs:
        turns = {}
        for path in glob.glob(os.path.join(out, "[AB].*", "results.json")):
            side, r = os.path.basename(os.path.dirname(path)).split(".", 1)
            turns.setdefault(int(r), {})[side] = path
        for r in sorted(turns):
            rounds += 1
            for side, path in sorted(turns[r].items()):
                with open(path) as f:
                    results = json.load(f)
                # The server binary: the last word before the command's "&".
                servers.setdefault(side, set()).update(
                    c.split()[-2] for c in results.get("servers", {}).values() if c.endswith("&"))
                for run in results["runs"]:
                    res = run["result"]
                    p99_path, rate_path = FIGURES.get(res.get("mode"), ((), ()))
                    row = table.setdefault(run["id"], {"A": {}, "B": {}})
                    row[side][rounds] = {
                        "p99": get(res, p99_path),
                        "rate": get(res, rate_path),
                        "ok": res.get("ok"),
                        "load": run.get("load_before"),
                    }
    for side in ("A", "B"):
        print(f"{side}: {', '.join(sorted(servers.get(side, ())))}")
    print()
    print("| run | round | A: p99 ms / per s (load) | B: p99 ms / per s (load) |")
    print("|---|---|---|---|")
    for run_id, sides in table.items():
        first = True
        for r in range(1, rounds + 1):
            if r not in sides["A"] and r not in sides["B"]:
                continue
            cells = []
            for side in ("A", "B"):
                x = sides[side].get(r)
                if x is None:
                    cells.append("–")
                    continue
                flag = "" if x["ok"] else ", **not clean**"
                cells.append(f"{ms(x['p99'])} / {number(x['rate'])} ({x['load']}){flag}")
            print(f"| {run_id if first else ''} | {r} | {cells[0]} | {cells[1]} |")
            first = False
    print()
    print("| run | runs A / B | median p99 A (ms) | median p99 B (ms) | B vs A "
          "| median per s A | median per s B | B vs A |")
    print("|---|---|---|---|---|---|---|---|")
    for run_id, sides in table.items():
        a, b = list(sides["A"].values()), list(sides["B"].values())
        pa, pb = median(a, "p99"), median(b, "p99")
        ra, rb = median(a, "rate"), median(b, "rate")
        print(f"| {run_id} | {len(a)} / {len(b)} | {ms(pa)} | {ms(pb)} | {pct(pa, pb)} "
              f"| {number(ra)} | {number(rb)} | {pct(ra, rb)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
