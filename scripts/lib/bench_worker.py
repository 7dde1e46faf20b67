#!/usr/bin/env python3
"""Job-queue benchmark driver for scripts/bench-worker: Basalt's worker vs graphile-worker.

Against one PostgreSQL (started by the bash script):

1. burn-down, each system in turn: pre-insert COUNT no-op jobs, start one worker process, and
   poll the database every ~50 ms; the rate is the jobs done between the first poll that sees
   a job done and the poll that sees the queue empty, over that time (start-up is not
   measured). The worker then stays up, idle.
2. latency, in ROUNDS slots per system alternating between them (ABBA…, so a drift in the
   machine hits both alike): with the worker idle, enqueue RATE jobs/s (one transaction per
   job, the payload carrying the wall-clock µs just before the insert) for SECONDS/ROUNDS;
   the worker records enqueue→start at each job's start and prints n/p50/p90/p99/max (µs) as
   one JSON line when SIGTERM stops it at the end;
3. CPU: utime+stime of the worker process and of PostgreSQL (the postmaster, every child
   alive at a sample, and the children it reaped in between) at the start and end of each
   phase or slot, per job, the database's split by connection (application_name). The
   poller's own backend is left out; the enqueuer's is counted (its inserts are part of what
   each system costs the database).

One Rust load generator (worker-testbed insert|enqueue, with --graphile for graphile's SQL
API) drives both systems, so they see the same load. Prints a table, the two ratios against
their targets and an `N passed, N failed` line.
"""
import argparse
import base64
import glob
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.05
POLLER_APP = "bench-poll"
WORKER_APP = "bench-worker-{}"  # .format(system)
LOAD_APP = "bench-load"


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def with_app(url, app, options=""):
    """`url` with application_name=app, so a backend's owner shows in pg_stat_activity, and
    with `options` (libpq's: e.g. `-c synchronous_commit=off`) for every session it opens."""
    url = f"{url}{'&' if '?' in url else '?'}application_name={app}"
    if options:
        url += "&options=" + urllib.parse.quote(options, safe="")
    return url


class Psql:
    """One long-lived psql session: polling through it costs no connection per poll."""

    def __init__(self, url):
        self.proc = subprocess.Popen(
            ["psql", with_app(url, POLLER_APP), "-XAtq", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.statements = 0  # each one its own transaction: left out of commits per job
        self.pid = int(self.one("SELECT pg_backend_pid()"))

    def one(self, sql):
        """The first column of a one-row query, as text ('' for NULL)."""
        self.statements += 1
        self.proc.stdin.write(sql.rstrip(";") + ";\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"psql ended while running: {sql}")
        return line.rstrip("\n")

    def run(self, sql, marker="__done__"):
        """A statement that returns no rows (psql -q prints nothing for it)."""
        self.statements += 1
        self.proc.stdin.write(f"{sql.rstrip(';')};\n\\echo {marker}\n")
        self.proc.stdin.flush()
        while (line := self.proc.stdout.readline()).rstrip("\n") != marker:
            if not line:
                sys.exit(f"psql ended while running: {sql}")

    def rows(self, sql, marker="__done__"):
        """Every row of a query, each a list of column texts."""
        self.statements += 1
        self.proc.stdin.write(f"{sql.rstrip(';')};\n\\echo {marker}\n")
        self.proc.stdin.flush()
        out = []
        while (line := self.proc.stdout.readline()).rstrip("\n") != marker:
            if not line:
                sys.exit(f"psql ended while running: {sql}")
            out.append(line.rstrip("\n").split("|"))
        return out

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def proc_cpu(pid, children=False):
    """utime+stime (and with `children`, cutime+cstime of reaped children) in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def children_of(ppid):
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == ppid:
            out.append(int(path.split("/")[2]))
    return out


class Sample:
    """CPU seconds at one moment: the worker, all of PostgreSQL, and each live backend."""

    def __init__(self, worker_pid, postmaster, db):
        self.at = time.monotonic()
        self.worker = proc_cpu(worker_pid)
        self.pg = proc_cpu(postmaster, children=True)
        self.poller = db.pid
        # Who each backend serves: the application_name the bench gave its connections, or
        # the background process's type (autovacuum worker, walwriter, …).
        roles = dict(db.rows("SELECT pid, coalesce(nullif(application_name, ''), backend_type) "
                             "FROM pg_stat_activity"))
        # Commits and WAL flushes so far (cumulative statistics, which backends report within
        # about a second): how many durable round trips a job costs.
        commits, self.wal_syncs = (int(v) for v in db.rows(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT wal_sync FROM pg_stat_wal)")[0])
        self.commits = commits - db.statements
        self.backends = {}
        for pid in children_of(postmaster):
            cpu = proc_cpu(pid)
            self.pg += cpu
            self.backends[pid] = (roles.get(str(pid), "?"), cpu)

    def since(self, start):
        """(worker, PostgreSQL without the poller) CPU seconds from `start` to this sample."""
        poller = self.backends.get(self.poller, ("", 0.0))[1]
        poller0 = start.backends.get(start.poller, ("", 0.0))[1]
        return self.worker - start.worker, (self.pg - poller) - (start.pg - poller0)

    def per_job(self, start, jobs):
        """Commits (the poller's left out) and WAL flushes per job since `start`."""
        jobs = max(jobs, 1)
        return (self.commits - start.commits) / jobs, (self.wal_syncs - start.wal_syncs) / jobs

    def by_role(self, start):
        """PostgreSQL CPU seconds since `start` per role; what exited or is the postmaster's
        own is `other`. For finding where the database's time goes, not for the targets."""
        out = {}
        for pid, (role, cpu) in self.backends.items():
            if pid == self.poller:
                continue
            delta = cpu - start.backends.get(pid, ("", 0.0))[1]
            out[role] = out.get(role, 0.0) + delta
        out["other"] = self.since(start)[1] - sum(out.values())
        return {k: round(v, 3) for k, v in out.items()}


class Basalt:
    name = "basalt"

    def __init__(self, args):
        self.args = args

    def reset(self, db):
        db.run("TRUNCATE jobs")

    def start_id(self, db):
        return None

    def any_done(self, db, _start):
        return db.one("SELECT exists (SELECT 1 FROM jobs WHERE state = 'completed')") == "t"

    def done(self, db):
        return int(db.one("SELECT count(*) FROM jobs WHERE state = 'completed'"))

    def empty(self, db):
        return db.one(
            "SELECT NOT exists (SELECT 1 FROM jobs "
            "WHERE state IN ('available', 'retryable', 'running'))"
        ) == "t"

    def worker(self, url):
        env = dict(os.environ, DATABASE_URL=with_app(url, WORKER_APP.format(self.name),
                                                      self.args.basalt_pg_options),
                   WORKER_HEALTH_ADDR="127.0.0.1:0", LOG_FORMAT="json", RUST_LOG="warn",
                   # worker serve signs webhooks, so it needs a key (no webhook runs here).
                   WEBHOOK_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode())
        return [self.args.testbed, "serve"], env


class Graphile:
    name = "graphile"

    def __init__(self, args):
        self.args = args

    def reset(self, db):
        db.run("DELETE FROM graphile_worker._private_jobs")

    def start_id(self, db):
        return db.one("SELECT min(id) FROM graphile_worker._private_jobs")

    def any_done(self, db, start):
        # One worker at concurrency 1 takes the jobs in id order (same priority and run_at).
        return db.one(
            f"SELECT NOT exists (SELECT 1 FROM graphile_worker._private_jobs WHERE id = {start})"
        ) == "t"

    def done(self, db):
        left = int(db.one("SELECT count(*) FROM graphile_worker._private_jobs"))
        return self.args.count - left

    def empty(self, db):
        return db.one("SELECT NOT exists (SELECT 1 FROM graphile_worker._private_jobs)") == "t"

    def worker(self, url):
        env = dict(os.environ,
                   DATABASE_URL=with_app(url, WORKER_APP.format(self.name),
                                         self.args.graphile_pg_options))
        return ["node", os.path.join(self.args.graphile_dir, "graphile.mjs"), "run"], env


def load_cmd(system, args, *rest):
    cmd = [args.testbed, *rest]
    if system.name == "graphile":
        cmd.append("--graphile")
    return cmd


def load_env(args):
    return dict(os.environ, DATABASE_URL=with_app(args.database_url, LOAD_APP),
                RUST_LOG="warn", LOG_FORMAT="json")


def run_load(system, args, *rest):
    cmd = load_cmd(system, args, *rest)
    res = subprocess.run(cmd, env=load_env(args), stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with {res.returncode}")
    return res.stdout


def run_enqueuer(system, args, db, seconds):
    """Runs the steady enqueue; returns the CPU seconds its backend used, read every ~50 ms
    while it runs (the backend is gone, reaped into the postmaster's total, by its end)."""
    cmd = load_cmd(system, args, "enqueue", "--rate", str(args.rate), "--seconds", str(seconds))
    proc = subprocess.Popen(cmd, env=load_env(args))
    backends, cpu = [], {}
    while proc.poll() is None:
        if not backends:
            backends = [int(r[0]) for r in db.rows(
                f"SELECT pid FROM pg_stat_activity WHERE application_name = '{LOAD_APP}'")]
        for pid in backends:
            seen = proc_cpu(pid)
            if seen:
                cpu[pid] = seen
        time.sleep(POLL)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with {proc.returncode}")
    return sum(cpu.values())


def wait_until(pred, proc, what, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            sys.exit(f"the worker exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic()


def start_worker(system, args):
    cmd, env = system.worker(args.database_url)
    out_path = os.path.join(args.workdir, f"{system.name}.out")
    err_path = os.path.join(args.workdir, f"{system.name}.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)
    proc.out_path, proc.err_path = out_path, err_path
    return proc


def burn_down(system, args, db, postmaster):
    """Phase 1: insert, start the worker, time the burn-down. Returns (figures, worker)."""
    name = system.name
    system.reset(db)
    log(f"{name}: inserting {args.count} jobs")
    run_load(system, args, "insert", "--count", str(args.count))
    # The same starting point for both: fresh statistics, no dirty pages waiting for a
    # checkpoint in the middle of the run.
    for sql in ("VACUUM ANALYZE", "CHECKPOINT"):
        db.run(sql)
    start_id = system.start_id(db)
    proc = start_worker(system, args)
    log(f"{name}: burn-down (worker pid {proc.pid})")
    wait_until(lambda: system.any_done(db, start_id), proc, "the first job done", 120)
    s0 = Sample(proc.pid, postmaster, db)
    done0 = system.done(db)
    wait_until(lambda: system.empty(db), proc, "the queue to empty", args.burn_timeout)
    s1 = Sample(proc.pid, postmaster, db)
    jobs = args.count - done0
    secs = s1.at - s0.at
    w, pg = s1.since(s0)
    burn = {"jobs": jobs, "seconds": secs, "rate": jobs / secs,
            "worker_ms": 1000 * w / jobs, "pg_ms": 1000 * pg / jobs,
            "pg_seconds_by_role": s1.by_role(s0)}
    burn["commits"], burn["wal_syncs"] = s1.per_job(s0, jobs)
    log(f"{name}: {jobs} jobs in {secs:.2f} s = {burn['rate']:.0f} jobs/s")
    return burn, proc


def latency_slot(system, args, db, postmaster, proc, seconds, acc):
    """One slot of phase 2: the worker idle, then `seconds` of steady enqueue; adds its CPU,
    commits and flushes to `acc`."""
    # Idle long enough for the worker to be waiting, not polling: the NOTIFY path.
    time.sleep(args.idle)
    log(f"{system.name}: latency, {args.rate} jobs/s for {seconds} s")
    s0 = Sample(proc.pid, postmaster, db)
    load_cpu = run_enqueuer(system, args, db, seconds)
    wait_until(lambda: system.empty(db), proc, "the enqueued jobs to finish", 60)
    s1 = Sample(proc.pid, postmaster, db)
    w, pg = s1.since(s0)
    roles = s1.by_role(s0)
    roles[LOAD_APP] = load_cpu
    roles["other"] -= load_cpu
    commits, wal_syncs = s1.per_job(s0, 1)
    acc["worker_s"] = acc.get("worker_s", 0.0) + w
    acc["pg_s"] = acc.get("pg_s", 0.0) + pg
    acc["commits"] = acc.get("commits", 0) + commits
    acc["wal_syncs"] = acc.get("wal_syncs", 0) + wal_syncs
    acc["enqueued"] = acc.get("enqueued", 0) + args.rate * seconds
    by_role = acc.setdefault("pg_seconds_by_role", {})
    for role, secs in roles.items():
        by_role[role] = by_role.get(role, 0.0) + secs


def stop_worker(system, proc):
    """SIGTERM; returns the latency summary the worker prints (µs)."""
    name = system.name
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"{name}: the worker did not stop within 60 s of SIGTERM")
    if rc != 0:
        sys.exit(f"{name}: the worker exited with {rc}; see {proc.err_path}")
    summary = None
    with open(proc.out_path) as f:
        for line in f:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("latency_us"), dict):
                summary = obj["latency_us"]
    if summary is None:
        sys.exit(f"{name}: the worker printed no latency line; see {proc.out_path}")
    return summary


def latency_figures(system, summary, acc):
    if summary["n"] < acc["enqueued"]:
        log(f"{system.name}: warning: {summary['n']} latencies recorded for "
            f"{acc['enqueued']} jobs enqueued")
    n = max(summary["n"], 1)
    lat = {k: (summary[k] or 0) / 1000 for k in ("p50", "p90", "p99", "max")}
    lat.update(n=summary["n"], worker_ms=1000 * acc["worker_s"] / n,
               pg_ms=1000 * acc["pg_s"] / n, commits=acc["commits"] / n,
               wal_syncs=acc["wal_syncs"] / n,
               pg_seconds_by_role={k: round(v, 3) for k, v in acc["pg_seconds_by_role"].items()})
    return lat


def jobs_of(result, phase):
    return result[phase]["jobs" if phase == "burn" else "n"] or 1


def role_ms(result, phase, role):
    """PostgreSQL CPU ms per job spent by the backends of `role` in `phase`."""
    role = role.format(result["name"])
    return 1000 * result[phase]["pg_seconds_by_role"].get(role, 0.0) / jobs_of(result, phase)


def rest_ms(result, phase):
    """The same for every other backend (the other system's idle worker's included)."""
    roles = result[phase]["pg_seconds_by_role"]
    own = (WORKER_APP.format(result["name"]), LOAD_APP)
    rest = sum(v for k, v in roles.items() if k not in own)
    return 1000 * rest / jobs_of(result, phase)


def table(results, args):
    names = list(results)
    rows = [
        ("burn-down", None, None),
        ("  jobs/s", lambda r: r["burn"]["rate"], "{:.0f}"),
        ("  seconds", lambda r: r["burn"]["seconds"], "{:.2f}"),
        ("  worker CPU ms/job", lambda r: r["burn"]["worker_ms"], "{:.3f}"),
        ("  PostgreSQL CPU ms/job", lambda r: r["burn"]["pg_ms"], "{:.3f}"),
        ("    the worker's connections", lambda r: role_ms(r, "burn", WORKER_APP), "{:.3f}"),
        ("    the rest (autovacuum, …)", lambda r: rest_ms(r, "burn"), "{:.3f}"),
        ("  commits/job", lambda r: r["burn"]["commits"], "{:.2f}"),
        ("  WAL flushes/job", lambda r: r["burn"]["wal_syncs"], "{:.2f}"),
        (f"latency at {args.rate:g} jobs/s, {args.seconds:g} s", None, None),
        ("  jobs seen", lambda r: r["latency"]["n"], "{:.0f}"),
        ("  enqueue→start p50 ms", lambda r: r["latency"]["p50"], "{:.2f}"),
        ("  p90 ms", lambda r: r["latency"]["p90"], "{:.2f}"),
        ("  p99 ms", lambda r: r["latency"]["p99"], "{:.2f}"),
        ("  max ms", lambda r: r["latency"]["max"], "{:.2f}"),
        ("  worker CPU ms/job", lambda r: r["latency"]["worker_ms"], "{:.3f}"),
        ("  PostgreSQL CPU ms/job", lambda r: r["latency"]["pg_ms"], "{:.3f}"),
        ("    the worker's connections", lambda r: role_ms(r, "latency", WORKER_APP), "{:.3f}"),
        ("    the enqueuer's connection", lambda r: role_ms(r, "latency", LOAD_APP), "{:.3f}"),
        ("    the rest (autovacuum, …)", lambda r: rest_ms(r, "latency"), "{:.3f}"),
        ("  commits/job", lambda r: r["latency"]["commits"], "{:.2f}"),
        ("  WAL flushes/job", lambda r: r["latency"]["wal_syncs"], "{:.2f}"),
    ]
    width = 34
    print(f"{'':<{width}}" + "".join(f"{n:>12}" for n in names))
    for label, get, fmt in rows:
        if get is None:
            print(label)
            continue
        print(f"{label:<{width}}" + "".join(f"{fmt.format(get(results[n])):>12}" for n in names))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testbed", required=True, help="the worker-testbed binary")
    p.add_argument("--graphile-dir", required=True, help="graphile.mjs beside its node_modules")
    p.add_argument("--database-url", required=True)
    p.add_argument("--pg-data", required=True, help="the cluster's data dir (postmaster.pid)")
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4,
                   help="latency slots per system, alternating between the systems")
    p.add_argument("--idle", type=float, default=2, help="seconds idle before each latency slot")
    p.add_argument("--basalt-pg-options", default="",
                   help="libpq options of Basalt's worker sessions (an experiment, not a target)")
    p.add_argument("--graphile-pg-options", default="",
                   help="libpq options of graphile-worker's sessions (likewise)")
    p.add_argument("--burn-timeout", type=float, default=900)
    p.add_argument("--systems", default="basalt,graphile")
    p.add_argument("--workdir", required=True)
    args = p.parse_args()

    with open(os.path.join(args.pg_data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    db = Psql(args.database_url)
    systems = [{"basalt": Basalt, "graphile": Graphile}[n](args) for n in args.systems.split(",")]
    results, workers, accs = {}, {}, {}
    try:
        # Phase 1, one system after the other (a finished one's worker waits, idle).
        for system in systems:
            results[system.name] = {"name": system.name}
            results[system.name]["burn"], workers[system.name] = burn_down(
                system, args, db, postmaster)
            accs[system.name] = {}
        # Phase 2 in slots that alternate between the systems (ABBA…), so that a drift in
        # the machine (the disk's flush latency varies several-fold here) hits both alike.
        rounds = max(1, args.rounds)
        slot = max(1, args.seconds // rounds)
        for r in range(rounds):
            for system in (systems if r % 2 == 0 else systems[::-1]):
                latency_slot(system, args, db, postmaster, workers[system.name], slot,
                             accs[system.name])
        for system in systems:
            summary = stop_worker(system, workers.pop(system.name))
            results[system.name]["latency"] = latency_figures(system, summary,
                                                              accs[system.name])
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
    db.close()
    args.seconds = slot * rounds

    print()
    print(f"machine: {os.cpu_count()} cores; PostgreSQL {db_version(args.database_url)}; "
          f"{args.count} jobs burnt down, then {args.rate:g} jobs/s for {args.seconds:g} s")
    print()
    table(results, args)
    if "basalt" not in results or "graphile" not in results:
        return
    b, g = results["basalt"], results["graphile"]
    ratio = b["burn"]["rate"] / g["burn"]["rate"]
    p50_ratio = b["latency"]["p50"] / g["latency"]["p50"]
    checks = [
        (f"jobs/s: basalt/graphile = {ratio:.2f} (target ≥ 1.5)", ratio >= 1.5),
        (f"enqueue→start p50: basalt/graphile = {p50_ratio:.2f} "
         f"({b['latency']['p50']:.2f} ms vs {g['latency']['p50']:.2f} ms; target ≤ 1)",
         p50_ratio <= 1.0),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    passed = sum(ok for _, ok in checks)
    print(f"{passed} passed, {len(checks) - passed} failed")
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    if passed < len(checks):
        sys.exit(1)


def db_version(url):
    out = subprocess.run(["psql", url, "-XAtqc", "SHOW server_version"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
