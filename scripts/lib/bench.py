#!/usr/bin/env python3
"""Load benchmark driver for scripts/bench: the full chain vs a bare router, side by side.

Runs wrk against the release host (every layer, Redis rate limiting, JSON request logs) and
against host/examples/bare.rs (same database work, no middleware), alternating targets so
both see the same machine conditions, and prints throughput, latency percentiles, the
ratios, and how the CPU was split between host, PostgreSQL, Redis and wrk.
"""
import argparse
import base64
import glob
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_plot  # noqa: E402
import bench_redis  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def context_switches(pids):
    """Voluntary and involuntary context switches of every thread of `pids`."""
    total = 0
    for pid in pids:
        for task in glob.glob(f"/proc/{pid}/task/*/status"):
            try:
                with open(task) as f:
                    total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
            except (FileNotFoundError, ProcessLookupError):
                pass
    return total


def pids_named(name):
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def request(base, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return json.loads(raw) if raw else None


def wait_ready(url, proc, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{what} did not become ready")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[p] = float(v) * UNITS[u]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    return rps, pct, int(errors.group(1)) if errors else 0, socket_errors.group(0) if socket_errors else ""


def run_wrk(wrk, url, conns, seconds, script, server_pids, perf_out=None, perf_pg=False):
    cmd = [wrk, "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url]
    perf = None
    if perf_out:
        # Samples the server only; `perf report -i <file>` afterwards.
        sampled = server_pids + (pids_named("postgres") if perf_pg else [])
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-o", perf_out,
                                 "-p", ",".join(map(str, sampled))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg_before = {p: cpu_seconds([p]) for p in pids_named("postgres")}
    redis_before = cpu_seconds(pids_named("redis-server"))
    server_before = cpu_seconds(server_pids)
    switches_before = context_switches(server_pids)
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    pg_after = {p: cpu_seconds([p]) for p in pids_named("postgres")}
    cpu = {
        "server": cpu_seconds(server_pids) - server_before,
        "postgres": sum(v - pg_before.get(p, 0.0) for p, v in pg_after.items()),
        "redis": cpu_seconds(pids_named("redis-server")) - redis_before,
        "wrk": usage.ru_utime + usage.ru_stime,
    }
    switches = context_switches(server_pids) - switches_before
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"wrk failed:\n{out}")
    return out, wall, cpu, switches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host-bin", required=True)
    ap.add_argument("--bare-bin", required=True)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", default="32,64")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repo", required=True, help="the checkout (for the limiter's Lua script)")
    ap.add_argument("--svg", required=True, help="where to write the plot")
    ap.add_argument("--redis-keys", type=int, default=100_000,
                    help="distinct keys for the limiter's Redis cost and memory per key")
    ap.add_argument("--perf-dir", help="record a perf profile of the server in each measured run")
    ap.add_argument("--perf-pg", action="store_true", help="with --perf-dir: sample PostgreSQL too")
    ap.add_argument("--db-pool", type=int, default=16, help="DB_POOL_MAX of both servers")
    ap.add_argument("--scenarios", default="get,post")
    ap.add_argument("--compare-host-bin",
                    help="another build of the host (e.g. before a change), measured as target 'compare'")
    ap.add_argument("--variants", default="",
                    help="extra targets that show where the cost goes: "
                         "no-redis (in-memory limiter), quiet (RUST_LOG=warn: no request lines), "
                         "bare+redis (bare plus only the limiter's Redis check: the floor of any "
                         "chain with one Redis round trip per request), bare+serve (bare served "
                         "through the host's connection loop instead of axum::serve)")
    args = ap.parse_args()
    # Extra servers beside chain and bare (the host binary, or bare for `bare…` variants): their
    # environment changes (None removes a variable).
    variant_env = {"no-redis": {"REDIS_URL": None}, "quiet": {"RUST_LOG": "warn"},
                   "bare+redis": {"BARE_RATE_LIMIT": "1"},
                   "bare+serve": {"BARE_SERVE": "host"}}
    unknown = [v for v in args.variants.split(",") if v and v not in variant_env]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(variant_env)}")

    # First, on an empty Redis: the limiter's CPU per call and memory per key.
    redis_host, redis_port = re.match(r"redis://([^:/]+):(\d+)", args.redis_url).groups()
    redis_figures = bench_redis.measure(redis_host, int(redis_port), args.repo, args.redis_keys)
    print(flush=True)

    host_port, bare_port = 18001, 18002
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        JWT_SECRET=secrets.token_urlsafe(48),
        WEBHOOK_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        BIND_ADDR=f"127.0.0.1:{host_port}",
        LOG_FORMAT="json",
        RUST_LOG="info",
        BCRYPT_COST="10",
        # Budgets the benchmark cannot reach (the most a budget may allow): limiting runs (one
        # Redis round trip per request) but never refuses.
        RATE_LIMIT_DEFAULT="1000000/1",
        RATE_LIMIT_AUTH="1000000/1",
        DB_POOL_MAX=str(args.db_pool),
    )
    subprocess.run([args.host_bin, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    logs = open(os.path.join(args.workdir, "host.log"), "w")
    host = subprocess.Popen([args.host_bin, "serve"], env=env, stdout=logs, stderr=logs)
    base = f"http://127.0.0.1:{host_port}"
    wait_ready(base + "/ready", host, "host")

    email = f"bench-{secrets.token_hex(4)}@example.com"
    user = request(base, "POST", "/v1/auth/register", {"email": email, "password": "bench password"})
    token = request(base, "POST", "/v1/auth/token", {"email": email, "password": "bench password"})["access_token"]
    for i in range(100):
        request(base, "POST", "/v1/items", {"title": f"item {i}", "description": "x" * 100}, token)
    page = request(base, "GET", "/v1/items?limit=100", token=token)
    assert len(page["items"]) == 100, len(page["items"])

    bare_env = dict(env, BIND_ADDR=f"127.0.0.1:{bare_port}", BENCH_USER_ID=user["id"])
    bare = subprocess.Popen([args.bare_bin], env=bare_env, stdout=subprocess.DEVNULL)
    bare_base = f"http://127.0.0.1:{bare_port}"
    wait_ready(bare_base + "/v1/items?limit=1", bare, "bare")
    bare_page = request(bare_base, "GET", "/v1/items?limit=100")
    assert [i["id"] for i in bare_page["items"]] == [i["id"] for i in page["items"]]

    scripts = {}
    for name, method, body in [("get", "GET", None), ("post", "POST", '{"title":"bench","description":"from wrk"}')]:
        path = os.path.join(args.workdir, f"{name}.lua")
        with open(path, "w") as f:
            f.write(f'wrk.method = "{method}"\n')
            f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
            if body:
                f.write('wrk.headers["Content-Type"] = "application/json"\n')
                f.write(f"wrk.body = '{body}'\n")
        scripts[name] = path

    targets = {"chain": (base, [host.pid]), "bare": (bare_base, [bare.pid])}
    more = [(v, args.bare_bin if v.startswith("bare") else args.host_bin, variant_env[v])
            for v in args.variants.split(",") if v]
    if args.compare_host_bin:
        more.append(("compare", args.compare_host_bin, {}))
    extra = []
    for i, (name, binary, changes) in enumerate(more):
        port = host_port + 10 + i
        is_bare = binary == args.bare_bin
        venv = dict(bare_env if is_bare else env, BIND_ADDR=f"127.0.0.1:{port}")
        for k, v in changes.items():
            if v is None:
                venv.pop(k, None)
            else:
                venv[k] = v
        proc = subprocess.Popen([binary, "serve"], env=venv, stdout=logs, stderr=logs)
        extra.append(proc)
        vbase = f"http://127.0.0.1:{port}"
        wait_ready(vbase + ("/v1/items?limit=1" if is_bare else "/ready"), proc, name)
        targets[name] = (vbase, [proc.pid])
    results = []
    try:
        wanted = args.scenarios.split(",")
        for scenario, path in [("GET /v1/items?limit=100", "/v1/items?limit=100"), ("POST /v1/items", "/v1/items")]:
            if scenario.split()[0].lower() not in wanted:
                continue
            script = scripts["get" if scenario.startswith("GET") else "post"]
            for conns in [int(c) for c in args.conns.split(",")]:
                names = list(targets)
                for rnd in range(args.rounds):
                    # Every target once per round, in a rotated order, so drift in the machine's
                    # load hits all of them alike; ratios are taken within a round.
                    order = names[rnd % len(names):] + names[:rnd % len(names)]
                    for target in order:
                        url, pids = targets[target]
                        run_wrk(args.wrk, url + path, conns, args.warmup, script, pids)
                        perf_out = args.perf_dir and os.path.join(
                            args.perf_dir, f"{scenario.split()[0].lower()}-c{conns}-{target}-r{rnd + 1}.data")
                        out, wall, cpu, switches = run_wrk(args.wrk, url + path, conns, args.seconds, script, pids,
                                                 perf_out, args.perf_pg)
                        rps, pct, non2xx, sock = parse_wrk(out)
                        results.append(dict(scenario=scenario, conns=conns, target=target, round=rnd,
                                            rps=rps, p50=pct.get("50"), p99=pct.get("99"),
                                            non2xx=non2xx, sock=sock, wall=wall, cpu=cpu,
                                            switches=switches))
                        print(f"  {scenario:26} c={conns:<3} round {rnd + 1} {target:8} {rps:9.0f} req/s  "
                              f"p50 {pct.get('50', 0):6.2f} ms  p99 {pct.get('99', 0):6.2f} ms"
                              f"{'  NON-2xx: %d' % non2xx if non2xx else ''} {sock}", flush=True)
    finally:
        for proc in [host, bare, *extra]:
            proc.terminate()
        for proc in [host, bare, *extra]:
            proc.wait()

    def median(values):
        values = sorted(values)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def runs(scenario, conns, target):
        return [r for r in results if (r["scenario"], r["conns"], r["target"]) == (scenario, conns, target)]

    print()
    print(f"Medians over {args.rounds} round(s) of {args.seconds} s; the ratio is the median of the "
          f"per-round ratios (range in brackets), Δp99 the median of per-round differences.")
    print(f"{'scenario':26} {'conns':>5} | {'chain req/s':>11} {'bare req/s':>10} {'ratio':>6} {'(range)':>13} | "
          f"{'chain p50':>9} {'p99':>7} | {'bare p50':>8} {'p99':>7} | {'Δp99':>7}")
    points = sorted({(r["scenario"], r["conns"]) for r in results},
                    key=lambda k: (not k[0].startswith("GET"), k[1]))
    for scenario, conns in points:
        bare_runs = runs(scenario, conns, "bare")
        for target in [t for t in targets if t != "bare"]:
            mine = runs(scenario, conns, target)
            pairs = [(c, b) for c in mine for b in bare_runs if c["round"] == b["round"]]
            ratios = [c["rps"] / b["rps"] for c, b in pairs]
            deltas = [c["p99"] - b["p99"] for c, b in pairs]
            label = scenario if target == "chain" else f"  ({target})"
            spread = f"({min(ratios):.0%}–{max(ratios):.0%})"
            print(f"{label:26} {conns:>5} | {median([r['rps'] for r in mine]):>11.0f} "
                  f"{median([r['rps'] for r in bare_runs]):>10.0f} {median(ratios):>6.1%} {spread:>13} | "
                  f"{median([r['p50'] for r in mine]):>7.2f}ms {median([r['p99'] for r in mine]):>5.2f}ms | "
                  f"{median([r['p50'] for r in bare_runs]):>6.2f}ms {median([r['p99'] for r in bare_runs]):>5.2f}ms | "
                  f"{median(deltas):>+5.2f}ms")
    if "compare" in targets:
        print()
        print("This build against the compare build (BENCH_COMPARE_HOST), per-round ratios of req/s:")
        for scenario, conns in points:
            mine, theirs = runs(scenario, conns, "chain"), runs(scenario, conns, "compare")
            ratios = [c["rps"] / o["rps"] for c in mine for o in theirs if c["round"] == o["round"]]
            print(f"  {scenario:26} c={conns:<3} chain/compare {median(ratios):.2f}× "
                  f"({min(ratios):.2f}–{max(ratios):.2f})")
    print()
    print("CPU per request (µs, all rounds; 2 cores = 2 s of CPU per second) and idle share; "
          "+ bare: what the target adds over bare, per process; CPU ratio: bare's total over the target's")
    print(f"{'scenario':26} {'conns':>5} {'target':10} | {'server':>6} {'postgres':>8} {'redis':>6} {'wrk':>6} "
          f"{'total':>6} | {'+ bare: server':>14} {'postgres':>8} {'redis':>6} {'wrk':>5} | {'CPU ratio':>9} | "
          f"{'idle':>5} | server context switches per request")
    for scenario, conns in points:
        per_target = {}
        for target in targets:
            mine = runs(scenario, conns, target)
            requests = sum(r["rps"] * r["wall"] for r in mine)
            wall = sum(r["wall"] for r in mine)
            per = {k: sum(r["cpu"][k] for r in mine) / requests * 1e6 for k in ["server", "postgres", "redis", "wrk"]}
            busy = sum(sum(r["cpu"].values()) for r in mine)
            per_target[target] = (per, max(0.0, 1 - busy / (2 * wall)), sum(r["switches"] for r in mine) / requests)
        base = per_target["bare"][0]
        for target, (per, idle, switches) in per_target.items():
            added = {k: per[k] - base[k] for k in per}
            print(f"{scenario:26} {conns:>5} {target:10} | {per['server']:>6.0f} {per['postgres']:>8.0f} "
                  f"{per['redis']:>6.0f} {per['wrk']:>6.0f} {sum(per.values()):>6.0f} | "
                  f"{added['server']:>+14.0f} {added['postgres']:>+8.0f} {added['redis']:>+6.0f} {added['wrk']:>+5.0f} | "
                  f"{sum(base.values()) / sum(per.values()):>9.1%} | {idle:>5.0%} | {switches:.2f}")
    print("Every process shares the same 2 cores and they run nearly busy, so a target's req/s over "
          "bare's follows its CPU ratio: what a target can reach is set by the CPU it adds per request "
          "(Redis's own CPU per call included, which a separate Redis host would not take from the server).")
    print()
    print("Redis (measured first, on an empty Redis): the limiter's script "
          f"{redis_figures['again']:.2f} µs per call on a known key, {redis_figures['first']:.2f} on a "
          f"new one, against {redis_figures['empty']:.2f} for `return 1` "
          f"({redis_figures['again'] / redis_figures['empty']:.2f}× / "
          f"{redis_figures['first'] / redis_figures['empty']:.2f}×; floor of TIME+GET+SET "
          f"{redis_figures['floor'] / redis_figures['empty']:.2f}×); "
          f"{redis_figures['bytes_per_key']:.0f} bytes per active key")
    bench_plot.write_svg(args.svg, results, list(targets), args.rounds,
                         f"scripts/bench: {args.rounds} round(s) × {args.seconds} s, wrk -t2; "
                         f"bars per target, one per round")
    print(f"plot: {args.svg}")
    failed = [r for r in results if r["non2xx"]]
    if failed:
        sys.exit(f"{len(failed)} runs had non-2xx responses: the figures above are not valid")


if __name__ == "__main__":
    main()
