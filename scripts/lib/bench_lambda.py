#!/usr/bin/env python3
"""Cold-start benchmark driver for scripts/bench-lambda.

For each bootstrap binary: start a one-shot local Lambda Runtime API (the protocol AWS's
runtime interface emulator speaks: GET .../invocation/next, POST .../invocation/{id}/response),
start the process with the Lambda environment, and measure the time from spawn to the first
response, and the process's peak RSS (VmHWM) at that moment. Repeated runs; median and spread.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# What every function gets besides the Lambda environment: settings that need no service
# (the pool is lazy: no database is contacted, exactly as on a real cold start).
SETTINGS = {
    "DATABASE_URL": "postgres://basalt@127.0.0.1:1/basalt",
    "JWT_SECRET": "bench-only-jwt-secret-bench-only-jwt-secret",
    "LOG_FORMAT": "json",
    "RUST_LOG": "info",
}


def lambda_env(env, port):
    """`env` plus what the Lambda service sets, for a Runtime API on 127.0.0.1:`port`."""
    return dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_LAMBDA_FUNCTION_NAME="bench",
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench")


def send_event(handler, event):
    """Answers a runtime's `GET .../invocation/next` with `event`, as the Runtime API does."""
    body = json.dumps(event).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Lambda-Runtime-Aws-Request-Id", "00000000-0000-0000-0000-000000000001")
    handler.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
    handler.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:bench")
    handler.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def runtime_api(event, on_response):
    """A one-shot local Lambda Runtime API on a free loopback port. The first `next` gets
    `event`; the runtime's POST (its result, body unread) goes to `on_response(handler)`, then
    is answered 202; any later `next` is held until then (the caller kills the process).
    Returns the server, its port and the event set once the POST was answered."""
    done = threading.Event()
    served = threading.Event()

    class Api(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.endswith("/invocation/next") or served.is_set():
                # A second `next`: the process is done for us; hold it until it is killed.
                done.wait(5)
                self.send_response(500)
                self.end_headers()
                return
            served.set()
            send_event(self, event)

        def do_POST(self):
            on_response(self)
            self.send_response(202)
            self.end_headers()
            done.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1], done


def one_invocation(binary, event, env):
    spawned = threading.Event()  # a fast process can answer before Popen() has returned
    result = {}

    def on_response(handler):
        result["at"] = time.perf_counter()
        spawned.wait(5)
        length = int(handler.headers.get("Content-Length") or 0)
        result["body"] = json.loads(handler.rfile.read(length) or b"null")
        result["path"] = handler.path
        try:
            with open(f"/proc/{result['pid']}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        result["rss_kb"] = int(line.split()[1])
        except FileNotFoundError:
            pass
        # What the resident pages are at that moment, by where they come from.
        try:
            result["resident"] = resident_by_origin(result["pid"], binary)
        except FileNotFoundError:
            pass
        # CPU time of all the process's threads so far (ns on CPU, from schedstat): tells
        # work done from time spent waiting.
        cpu_ns = 0
        try:
            for task in os.listdir(f"/proc/{result['pid']}/task"):
                with open(f"/proc/{result['pid']}/task/{task}/schedstat") as f:
                    cpu_ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
        result["cpu_ms"] = cpu_ns / 1e6

    server, port, done = runtime_api(event, on_response)
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=lambda_env(env, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    result["pid"] = proc.pid
    spawned.set()
    ok = done.wait(10)
    proc.kill()
    proc.wait()
    server.shutdown()
    if not ok:
        sys.exit(f"{binary}: no response within 10 s")
    if "/response" not in result["path"]:
        sys.exit(f"{binary}: runtime reported an error: {result['body']}")
    return ((result["at"] - started) * 1000, result.get("rss_kb", 0) / 1024, result["body"],
            result["cpu_ms"], result.get("resident", {}))


# Where a process's resident pages come from (`/proc/PID/smaps`), in MB: the binary's code
# (its executable segment), its read-only data (constants, unwind tables, the relocation table)
# as file pages, the binary's pages the loader wrote at start (relocated pointers: private
# copies, i.e. anonymous, even once RELRO has made them read-only), shared libraries, and the
# rest of anonymous memory (heap, stacks). A file-backed page is resident when the code touched
# it or a page near it: the kernel maps up to 64 KB of cached pages around each page fault
# ("fault-around"), so resident code grows with how many separate places the start-up path
# touches, not only with how much of it runs (`BENCH_FAULTS=1` counts the faults).
ORIGINS = ("code", "rodata", "relocated", "libraries", "heap+stacks")


def resident_by_origin(pid, binary):
    own = os.path.realpath(binary)
    totals = dict.fromkeys(ORIGINS, 0.0)
    kind = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's header: range perms offset dev inode [path]
                perms, path = fields[1], fields[5] if len(fields) > 5 else ""
                kind = ("code" if "x" in perms else "data") if path == own else \
                    "libraries" if path.startswith("/") else "heap+stacks"
                rss = 0
            elif fields[0] == "Rss:":
                rss = int(fields[1]) / 1024
            elif fields[0] == "Anonymous:":
                anon = int(fields[1]) / 1024
                if kind == "data":
                    totals["rodata"] += rss - anon
                    totals["relocated"] += anon
                else:
                    totals[kind] += rss
    return totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True, help="directory with NAME.json per function")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--baseline", required=True, help="hello-world bootstrap")
    ap.add_argument("functions", nargs="+", help="name=path-to-binary")
    args = ap.parse_args()
    env = dict(os.environ, **SETTINGS)
    # The baseline twice: as `lambda_http`'s hello-world is written (multi-threaded
    # #[tokio::main]) and on a current-thread runtime, like the functions, for a like-for-like
    # figure. Both are the same binary (HELLO_CURRENT_THREAD picks the runtime).
    targets = [("hello-world", args.baseline, {}, "hello-world"),
               ("hello-1thread", args.baseline, {"HELLO_CURRENT_THREAD": "1"}, "hello-world")]
    targets += [(name, path, {}, name) for name, path in (f.split("=", 1) for f in args.functions)]
    samples = {name: [] for name, *_ in targets}
    # Interleave the targets run by run, so machine noise hits them alike.
    for _ in range(args.runs):
        for name, binary, extra_env, event_name in targets:
            event = json.load(open(os.path.join(args.events, f"{event_name}.json")))
            ms, rss, body, cpu, resident = one_invocation(binary, event, dict(env, **extra_env))
            expected = 200 if event_name in ("hello-world", "health") else 401
            if body.get("statusCode") != expected:
                sys.exit(f"{name}: expected {expected}, got {body}")
            samples[name].append((ms, rss, cpu, resident))

    def paired(name, base):
        # Median of the per-round ratios: each round runs every target back to back.
        return statistics.median(a[0] / b[0] for a, b in zip(samples[name], samples[base]))

    def peak(name):
        return max(s[1] for s in samples[name])

    print(f"{'function':13} {'init median':>11} {'p10':>7} {'p90':>7} {'× hello':>8} {'× 1-thread':>10} "
          f"{'peak RSS':>9} {'× hello':>7} {'CPU median':>10}")
    for name, *_ in targets:
        ms = sorted(s[0] for s in samples[name])
        rss = peak(name)
        cpu = statistics.median(s[2] for s in samples[name])
        p10 = ms[max(0, len(ms) // 10)]
        p90 = ms[min(len(ms) - 1, (len(ms) * 9) // 10)]
        med = statistics.median(ms)
        print(f"{name:13} {med:>9.2f}ms {p10:>5.2f}ms {p90:>5.2f}ms {paired(name, 'hello-world'):>7.2f}× "
              f"{paired(name, 'hello-1thread'):>9.2f}× {rss:>7.1f}MB {rss / peak('hello-world'):>6.2f}× "
              f"{cpu:>8.2f}ms")
    print("× hello: median over rounds of (this run / the hello-world run of the same round); peak RSS "
          "× hello: the highest VmHWM of all runs over hello-world's")
    print()
    print("resident at the response (smaps), MB, medians: the binary's code, its read-only data, what "
          "the loader wrote (relocations), shared libraries, heap and stacks")
    print(f"{'function':13} " + " ".join(f"{o:>11}" for o in ORIGINS) + f" {'total':>7}")
    for name, *_ in targets:
        by = {o: statistics.median(s[3].get(o, 0) for s in samples[name]) for o in ORIGINS}
        print(f"{name:13} " + " ".join(f"{by[o]:>11.2f}" for o in ORIGINS) + f" {sum(by.values()):>7.2f}")


if __name__ == "__main__":
    main()
