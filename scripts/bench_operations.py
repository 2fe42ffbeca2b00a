#!/usr/bin/env python3
"""Drives `scripts/bench operations`: Harrow's operations through the API, end to end.

Standard library only (any /usr/bin/python3 from 3.9 on). scripts/bench starts the servers,
the API server and the worker; this script talks to the API like a user and prints one
`scenario=... key=value ...` line per scenario and run. Subcommands:

  setup       log in, create an organization, a project and the benchmark's tasks and jobs;
              writes their ids to --state
  latency     sequential operations of `echo first` on an idle worker: from the client's wall
              clock just before the POST to the `t` (ms since the epoch, the worker's clock on the
              same machine) of the script's first log line; p50/p99/max, plus a breakdown
              from the operation's row in Postgres (created_at, started_at) when --database-url
  output      one operation printing --bytes of output in lines of 100 characters: every line
              must arrive (the archived log, paged through the log endpoint), wall time, MB/s,
              worker CPU seconds per MB (utime+stime of --worker-pid from /proc)
  concurrent  --count operations of `sleep 1; echo done` posted at once: time from the first
              POST to all of them finished, and whether all succeeded
  wait        until the API server is ready or the worker has started
  summarize   the table of medians of a results file
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

FINAL = {"succeeded", "failed", "timed_out", "canceled"}
LINE_WIDTH = 100  # characters per line of the output scenario (plus the newline)


class API:
    """A keep-alive HTTP/JSON client for one thread (http.client, so no connection per request)."""

    def __init__(self, base, token=None):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.token = token
        self.connection = None

    def request(self, method, path, body=None, expect=(200, 201, 204)):
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                # A keep-alive connection the server closed: reconnect once.
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise
        if response.status not in expect:
            raise SystemExit(f"bench: {method} {path} answered {response.status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None):
        return self.request("POST", path, body)


def now_ms():
    return time.time() * 1000.0


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def emit(fields):
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()), flush=True)


def load_state(path):
    with open(path) as f:
        return json.load(f)


def wait_final(api, project, operation, interval=0.02, timeout=900):
    """Polls the operation until it is over; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        record = api.get(f"/v1/projects/{project}/operations/{operation}")
        if record["status"] in FINAL:
            return record
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: operation {operation} still {record['status']} after {timeout}s")
        time.sleep(interval)


def read_log(api, project, operation, each=None, limit=1000):
    """Every line of the operation's log through the paged endpoint; `each(page)` sees every
    page instead of collecting them when given."""
    after, collected = "0", []
    while True:
        page = api.get(f"/v1/projects/{project}/operations/{operation}/log?after={after}&limit={limit}")
        lines = page["lines"]
        if each:
            each(lines)
        else:
            collected.extend(lines)
        if not lines or page["finished"]:
            return collected
        after = page["next"]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": fields[0] is the state (field 3), so utime (14) and stime (15) are 11, 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# --------------------------------------------------------------------------------------------
# setup


def setup(args):
    with open(args.password_file) as f:
        password = f.read().strip()
    api = API(args.api)
    session = api.post("/v1/sessions", {"email": args.email, "password": password})
    api.token = session["token"]
    organization = api.post("/v1/organizations", {"name": "bench"})
    project = api.post(f"/v1/organizations/{organization['id']}/projects", {"name": "operations bench"})
    environments = api.get(f"/v1/projects/{project['id']}/environments")["items"]
    environment = next(e for e in environments if e["is_default"])

    output_bytes = args.output_bytes
    if output_bytes % LINE_WIDTH:
        raise SystemExit(f"bench: --output-bytes must be a multiple of {LINE_WIDTH}")
    scripts = {
        "latency": "echo first\n",
        # N bytes of 'x' in lines of 100 characters: N/100 lines, N bytes of log text.
        "output": f"head -c {output_bytes} /dev/zero | tr '\\0' x | fold -w {LINE_WIDTH}\n",
        "concurrent": "sleep 1; echo done\n",
    }
    jobs = {}
    for name, script in scripts.items():
        task = api.post(f"/v1/projects/{project['id']}/tasks", {"name": f"bench {name}", "script": script})
        job = api.post(
            f"/v1/projects/{project['id']}/jobs",
            {"name": f"bench {name}", "task_id": task["id"], "environment_id": environment["id"], "time_limit_seconds": 3600},
        )
        jobs[name] = job["id"]
    state = {"api": args.api, "token": session["token"], "project": project["id"], "jobs": jobs, "output_bytes": output_bytes}
    with open(args.state, "w") as f:
        json.dump(state, f)


# --------------------------------------------------------------------------------------------
# latency


def breakdown(database_url, samples):
    """Per operation: POST → created_at (API), created_at → started_at (outbox relay, Redis,
    fetch, claim), started_at → first line (plan, workspace, sandbox, the script's start), from
    the rows' timestamps (microseconds; Postgres's now() is its transaction's start)."""
    ids = ",".join(f"'{s['id']}'" for s in samples)
    out = subprocess.run(
        ["psql", database_url, "-XtA", "-F", " ", "-c",
         "SELECT id, extract(epoch from created_at) * 1000, extract(epoch from started_at) * 1000 "
         f"FROM operations WHERE id IN ({ids})"],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        if line.strip():
            oid, created, started = line.split()
            rows[oid.lower()] = (float(created), float(started))
    parts = {"api_ms": [], "queue_ms": [], "start_ms": []}
    for s in samples:
        created, started = rows[s["id"].lower()]
        parts["api_ms"].append(created - s["t0"])
        parts["queue_ms"].append(started - created)
        parts["start_ms"].append(s["first"] - started)
    return {f"{k.removesuffix('_ms')}_p50_ms": statistics.median(v) for k, v in parts.items()}


def latency(args):
    state = load_state(args.state)
    api = API(state["api"], state["token"])
    project, job = state["project"], state["jobs"]["latency"]
    samples, post_ms = [], []
    for index in range(args.count + args.warmup):
        time.sleep(args.pause)  # the worker is idle: the previous run has been recorded and cleaned up
        t0 = now_ms()
        operation = api.post(f"/v1/projects/{project}/jobs/{job}/operations")
        posted = now_ms()
        record = wait_final(api, project, operation["id"])
        if record["status"] != "succeeded":
            raise SystemExit(f"bench: latency operation {operation['id']} ended {record['status']}")
        lines = read_log(api, project, operation["id"])
        first = next((line for line in lines if line["stream"] == "stdout"), None)
        if first is None or first["text"] != "first":
            raise SystemExit(f"bench: operation {operation['id']} logged no `first`: {lines!r}")
        if index >= args.warmup:
            samples.append({"id": operation["id"], "t0": t0, "first": float(first["t"]), "ms": first["t"] - t0})
            post_ms.append(posted - t0)
    values = [s["ms"] for s in samples]
    fields = {
        "scenario": "op_latency", "n": len(values),
        "p50_ms": statistics.median(values), "p99_ms": percentile(values, 99), "max_ms": max(values),
        "post_p50_ms": statistics.median(post_ms),
    }
    if args.database_url:
        fields.update(breakdown(args.database_url, samples))
    emit(fields)


# --------------------------------------------------------------------------------------------
# output


def output(args):
    state = load_state(args.state)
    api = API(state["api"], state["token"])
    project, job, size = state["project"], state["jobs"]["output"], state["output_bytes"]
    expected_lines = size // LINE_WIDTH
    cpu0, t0 = cpu_seconds(args.worker_pid), now_ms()
    operation = api.post(f"/v1/projects/{project}/jobs/{job}/operations")
    record = wait_final(api, project, operation["id"], interval=0.05)
    t1 = now_ms()
    cpu1 = cpu_seconds(args.worker_pid)
    if record["status"] != "succeeded":
        raise SystemExit(f"bench: output operation {operation['id']} ended {record['status']}")

    counts = {"lines": 0, "bytes": 0, "bad": 0, "other": 0, "first_t": None, "last_t": None}
    full = "x" * LINE_WIDTH

    def each(lines):
        for line in lines:
            if line["stream"] != "stdout":
                counts["other"] += 1
                print(f"bench: output log line on {line['stream']}: {line['text'][:200]}", file=sys.stderr)
                continue
            counts["lines"] += 1
            counts["bytes"] += len(line["text"])
            if line["text"] != full:
                counts["bad"] += 1
            if counts["first_t"] is None:
                counts["first_t"] = line["t"]
            counts["last_t"] = line["t"]

    read_started = time.monotonic()
    read_log(api, project, operation["id"], each=each)
    read_s = time.monotonic() - read_started
    complete = counts["lines"] == expected_lines and counts["bytes"] == size and counts["bad"] == 0
    mb = size / 1e6
    wall_s = (t1 - t0) / 1000
    fields = {
        "scenario": "op_output", "mb": round(mb, 3), "lines": counts["lines"], "expected_lines": expected_lines,
        "complete": int(complete),
        "wall_s": wall_s, "mb_per_s": mb / wall_s,
        "worker_cpu_s_per_mb": (cpu1 - cpu0) / mb,
        "worker_peak_rss_mb": peak_rss_mb(args.worker_pid),
        # From the first to the last line's `t` (when the worker read it): the script's output.
        "stream_s": ((counts["last_t"] or 0) - (counts["first_t"] or 0)) / 1000,
    }
    if args.redis_url and args.database_url:
        # Where the rest goes: the live log's end marker (its Redis id is the time of its XADD,
        # after every line was sent), then the outcome's transaction with the archive (its
        # finished_at is the transaction's start), then the client seeing it final.
        key = f"{args.key_prefix}:oplog:{{{operation['id'].lower()}}}"
        end = subprocess.run(["redis-cli", "-u", args.redis_url, "XREVRANGE", key, "+", "-", "COUNT", "1"],
                             check=True, capture_output=True, text=True).stdout.split()
        end_ms = float(end[0].split("-")[0]) if end else float("nan")
        finished_ms = float(subprocess.run(
            ["psql", args.database_url, "-XtA", "-c",
             f"SELECT extract(epoch from finished_at) * 1000 FROM operations WHERE id = '{operation['id']}'"],
            check=True, capture_output=True, text=True).stdout.strip())
        fields["live_flush_s"] = (end_ms - (counts["last_t"] or 0)) / 1000
        fields["to_record_s"] = (finished_ms - end_ms) / 1000
        fields["record_s"] = (t1 - finished_ms) / 1000
    fields["log_read_s"] = read_s
    emit(fields)
    if not complete:
        raise SystemExit(f"bench: the output log is incomplete: {counts} (expected {expected_lines} lines of {LINE_WIDTH})")


# --------------------------------------------------------------------------------------------
# concurrent


def concurrent(args):
    state = load_state(args.state)
    project, job = state["project"], state["jobs"]["concurrent"]
    ids, errors, lock = [], [], threading.Lock()
    start = threading.Barrier(args.count + 1)

    def post():
        api = API(state["api"], state["token"])
        api.get("/v1/me")  # connect before the start
        start.wait()
        try:
            operation = api.post(f"/v1/projects/{project}/jobs/{job}/operations")
            with lock:
                ids.append(operation["id"])
        except BaseException as error:  # SystemExit from API.request included
            with lock:
                errors.append(repr(error))

    threads = [threading.Thread(target=post) for _ in range(args.count)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = now_ms()
    for thread in threads:
        thread.join()
    posted_s = (now_ms() - t0) / 1000
    if errors:
        raise SystemExit(f"bench: {len(errors)} POSTs failed: {errors[:3]}")

    api = API(state["api"], state["token"])
    wanted, statuses = set(ids), {}
    deadline = time.monotonic() + 600
    while True:
        page = api.get(f"/v1/projects/{project}/jobs/{job}/operations?limit=200")
        statuses = {op["id"]: op["status"] for op in page["items"] if op["id"] in wanted}
        if len(statuses) == len(wanted) and all(s in FINAL for s in statuses.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: concurrent operations not finished after 600 s: {statuses}")
        time.sleep(0.02)
    wall_s = (now_ms() - t0) / 1000
    succeeded = sum(1 for s in statuses.values() if s == "succeeded")
    emit({"scenario": "op_concurrent", "n": len(ids), "succeeded": succeeded, "all_succeeded": int(succeeded == len(ids)),
          "wall_s": wall_s, "post_s": posted_s})
    if succeeded != len(ids):
        raise SystemExit(f"bench: only {succeeded} of {len(ids)} concurrent operations succeeded")


# --------------------------------------------------------------------------------------------
# wait


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(args):
    """Until --url answers 200, or --log has a `worker started` line after its first
    --after-lines lines; fails when --pid dies or after --timeout seconds."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if args.pid and not alive(args.pid):
            sys.exit(f"bench: process {args.pid} exited")
        if args.url:
            try:
                with urllib.request.urlopen(args.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
        if args.log:
            try:
                with open(args.log, errors="replace") as f:
                    if any("worker started" in line for line in f.readlines()[args.after_lines:]):
                        return
            except OSError:
                pass
        time.sleep(0.1)
    sys.exit(f"bench: not ready after {args.timeout}s")


# --------------------------------------------------------------------------------------------
# summarize

EXPECTED = {
    "op_latency": ["p50_ms", "p99_ms", "max_ms"],
    "op_output": ["lines", "complete", "wall_s", "mb_per_s", "worker_cpu_s_per_mb"],
    "op_concurrent": ["n", "succeeded", "wall_s"],
}


def summarize(args):
    groups = {}
    for line in open(args.results):
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        scenario = fields.pop("scenario", None)
        if scenario not in EXPECTED:
            continue
        for name in EXPECTED[scenario]:
            if name not in fields:
                sys.exit(f"bench: {scenario} did not print {name}")
        for name, value in fields.items():
            try:
                groups.setdefault(scenario, {}).setdefault(name, []).append(float(value))
            except ValueError:
                pass
    for scenario in EXPECTED:
        if scenario not in groups:
            sys.exit(f"bench: scenario {scenario} printed nothing")
    runs = max(len(v) for metrics in groups.values() for v in metrics.values())
    print(f"\nmedians of {runs} run(s)")
    print(f"{'scenario':<15} figures")
    for scenario, metrics in groups.items():
        print(f"{scenario:<15} " + "  ".join(f"{m}={statistics.median(v):g}" for m, v in metrics.items()))
    if args.smoke:
        print("bench smoke: every operations scenario printed every figure")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--api", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--output-bytes", type=int, required=True)
    p.set_defaults(run=setup)
    p = sub.add_parser("latency")
    p.add_argument("--state", required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.05, help="seconds between operations")
    p.add_argument("--database-url", help="for the breakdown of the latency (psql)")
    p.set_defaults(run=latency)
    p = sub.add_parser("output")
    p.add_argument("--state", required=True)
    p.add_argument("--worker-pid", type=int, required=True)
    p.add_argument("--redis-url", help="with --database-url: where the time after the output goes (redis-cli, psql)")
    p.add_argument("--database-url")
    p.add_argument("--key-prefix", default="harrow")
    p.set_defaults(run=output)
    p = sub.add_parser("concurrent")
    p.add_argument("--state", required=True)
    p.add_argument("--count", type=int, default=50)
    p.set_defaults(run=concurrent)
    p = sub.add_parser("wait")
    p.add_argument("--url")
    p.add_argument("--log")
    p.add_argument("--after-lines", type=int, default=0)
    p.add_argument("--pid", type=int)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(run=wait)
    p = sub.add_parser("summarize")
    p.add_argument("--results", required=True)
    p.add_argument("--smoke", action="store_true")
    p.set_defaults(run=summarize)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
