# shellcheck shell=bash
# The results file of the benchmark profile, shared by
# scripts/bench.sh and scripts/test.d/20-bench-smoke.sh (which renders its
# own short runs the same way, so the rendering is tested on every
# scripts/test.sh). `chat-bench report` turns a results file into the
# generated section of docs/benchmarks.md; its format is described in
# crates/chat-bench/src/profile.rs.
#
# A run's record is one JSON line in a runs file; bench_assemble wraps the
# runs with the facts of the machine and the tree. python3 (stdlib only)
# does the JSON, so that commands with quotes in them stay intact.

# The 1-minute load average.
bench_load1() { cut -d' ' -f1 /proc/loadavg; }

# bench_record RUNS_FILE ID LABEL STORE COMMAND LOAD_BEFORE LOAD_AFTER RESULT_FILE
# Appends one run record to RUNS_FILE. RESULT_FILE holds the run's JSON
# line (the one starting with {"mode":); other lines in it are ignored.
bench_record() {
  python3 - "$@" <<'PY'
import json, sys
runs, run_id, label, store, command, before, after, result_file = sys.argv[1:9]
lines = [l for l in open(result_file) if l.startswith('{"mode":')]
if len(lines) != 1:
    sys.exit(f"{result_file}: expected one JSON line starting with {{\"mode\":, got {len(lines)}")
def load(v):
    try:
        return float(v)
    except ValueError:
        return None
record = {"id": run_id, "label": label, "store": store, "command": command,
          "load_before": load(before), "load_after": load(after),
          "result": json.loads(lines[0])}
with open(runs, "a") as f:
    f.write(json.dumps(record) + "\n")
PY
}

# bench_summary RESULT_FILE: the key figures of a run's JSON line, on one line.
bench_summary() {
  python3 - "$1" <<'PY'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith('{"mode":'))
r = json.loads(line)
keys = ("ok", "connected", "rss_per_socket_kb", "deliveries_per_s", "persisted_per_s",
        "delivered_per_s", "lost", "unsent", "req_per_s", "tps")
parts = [f"{k} {r[k]}" for k in keys if k in r]
parts += [f"{n} p99 {r[n].get('p99_ms')} ms" for n in ("latency", "delivery_latency") if n in r]
print(", ".join(parts))
PY
}

# bench_pgbench_line OUTPUT_FILE CLIENTS SECONDS
# Prints pgbench's figures from its output as a JSON line in chat-bench's
# shape ({"mode":"pgbench","ok":...}).
bench_pgbench_line() {
  python3 - "$@" <<'PY'
import json, re, sys
path, clients, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = open(path).read()
def find(pattern, cast=float):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else None
tps = find(r"^tps = ([0-9.]+)")
failed = find(r"^number of failed transactions: (\d+)", int) or 0
line = {"mode": "pgbench", "ok": tps is not None and failed == 0,
        "clients": clients, "duration_s": seconds,
        "transactions": find(r"^number of transactions actually processed: (\d+)", int),
        "failed": failed, "tps": tps,
        "latency_avg_ms": find(r"^latency average = ([0-9.]+) ms")}
print(json.dumps(line))
PY
}

# bench_assemble OUT PROFILE COMMAND RUNS_FILE SERVERS_FILE SETUP_FILE DATE PG_VERSION
# Writes the results file OUT. SERVERS_FILE has "store<TAB>command" lines,
# SETUP_FILE one command a line; either may be missing. The commit and
# whether the tree was dirty come from git (read-only: no index refresh).
bench_assemble() {
  local commit dirty=false
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [[ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=true
  fi
  python3 - "$@" "$commit" "$dirty" <<'PY'
import json, os, sys
out, profile, command, runs_file, servers_file, setup_file, date, pg, commit, dirty = sys.argv[1:11]
def read_lines(path):
    try:
        return [l.rstrip("\n") for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []
cpu = ""
for line in read_lines("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
memory = ""
for line in read_lines("/proc/meminfo"):
    if line.startswith("MemTotal:"):
        memory = f"{int(line.split()[1]) / 1048576:.1f} GiB"
        break
uname = os.uname()
results = {
    "profile": profile, "date": date, "commit": commit, "dirty": dirty == "true",
    "command": command,
    "machine": {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory": memory,
                "kernel": f"{uname.sysname} {uname.release}", "postgres": pg},
    "servers": dict(l.split("\t", 1) for l in read_lines(servers_file)),
    "setup": read_lines(setup_file),
    "runs": [json.loads(l) for l in read_lines(runs_file)],
}
with open(out, "w") as f:
    json.dump(results, f, indent=1)
    f.write("\n")
PY
}
