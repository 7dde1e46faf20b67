#!/usr/bin/env python3
"""Runs the README's webhook walk-through as written, against a real host and worker.

Takes the README's "Trying it" and "Webhooks" shell blocks, points their fixed ports
(localhost:8001, the receiver's 9100) at free ones, and runs them line by line with a pause
between lines, as a person would, with `host serve` and `worker serve` running on a throwaway
database in development mode (what `scripts/dev` sets). Then checks what the receiver printed:
the item's `item.created` delivery verified by the official Python `standardwebhooks` package,
its replay with the same `webhook-id`, and the `webhook.test` message.

Prints one line per check and a final `N passed, N failed`; exits 1 if any failed.
"""

import argparse
import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def block_after(readme, heading):
    """The first ```sh block after `heading`."""
    start = readme.index(heading)
    match = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
    if not match:
        sys.exit(f"no sh block after {heading!r} in README.md")
    return match.group(1)


def logical_lines(block):
    """Shell lines with backslash continuations joined; comments-only lines dropped."""
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.strip().startswith("#"):
            lines.append(current)
        current = ""
    return lines


def wait_ready(url, proc, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} was not ready within {seconds} s ({url})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True)
    p.add_argument("--host-bin", required=True)
    p.add_argument("--worker-bin", required=True)
    p.add_argument("--database-url", required=True, help="an empty database")
    args = p.parse_args()

    readme = open(os.path.join(args.repo, "README.md"), encoding="utf-8").read()
    host_port, health_port, receiver_port = free_port(), free_port(), free_port()
    script = logical_lines(block_after(readme, "## Trying it"))
    script += logical_lines(block_after(readme, "### Webhooks"))
    script = [
        line.replace("localhost:8001", f"127.0.0.1:{host_port}")
        .replace("localhost:9100", f"127.0.0.1:{receiver_port}")
        .replace("--port 9100", f"--port {receiver_port}")
        for line in script
    ]

    env = dict(
        os.environ,
        DATABASE_URL=args.database_url,
        BASALT_DEV="1",
        JWT_SECRET="walkthrough-only-jwt-secret-walkthrough-only-x",
        WEBHOOK_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        WEBHOOK_ALLOW_INSECURE="1",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="1",
        BIND_ADDR=f"127.0.0.1:{host_port}",
        WORKER_HEALTH_ADDR=f"127.0.0.1:{health_port}",
        LOG_FORMAT="json",
        RUST_LOG="warn",
    )
    subprocess.run([args.host_bin, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    logs = tempfile.TemporaryDirectory(prefix="basalt-walkthrough.")
    host_log = open(os.path.join(logs.name, "host.log"), "w")
    worker_log = open(os.path.join(logs.name, "worker.log"), "w")
    host = subprocess.Popen([args.host_bin, "serve"], env=env, stdout=host_log, stderr=host_log)
    worker = subprocess.Popen([args.worker_bin, "serve"], env=env, stdout=worker_log,
                              stderr=worker_log)
    out_path = os.path.join(logs.name, "walkthrough.out")
    try:
        wait_ready(f"http://127.0.0.1:{host_port}/ready", host, "host serve")
        wait_ready(f"http://127.0.0.1:{health_port}/readyz", worker, "worker serve")
        # One shell for the whole walk-through (its variables carry over), a second between
        # lines; the background receiver is stopped when the shell exits.
        shell = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
        for line in script:
            shell += [line, "sleep 1"]
        with open(out_path, "w") as out:
            ran = subprocess.run(["bash", "-c", "\n".join(shell)], cwd=args.repo, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, timeout=300)
    finally:
        for proc in (host, worker):
            proc.terminate()
        for proc in (host, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    output = open(out_path, encoding="utf-8").read()
    # curl prints bodies without a newline: read the output as a stream of JSON values.
    deliveries, decoder, i = [], json.JSONDecoder(), 0
    while (i := output.find("{", i)) != -1:
        try:
            value, end = decoder.raw_decode(output, i)
        except ValueError:
            i += 1
            continue
        if isinstance(value, dict) and "verified" in value:
            deliveries.append(value)
        i = end

    checks = []

    def check(name, ok):
        checks.append(ok)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")

    check("the walk-through's commands all succeeded", ran.returncode == 0)
    created = [d for d in deliveries if d.get("type") == "item.created"]
    check("one item.created delivery, then its replay", len(created) == 2)
    check("every delivery verified with the Python standardwebhooks package",
          bool(deliveries) and all(d.get("verified") is True for d in deliveries))
    check("the replay carried the same webhook-id",
          len(created) == 2 and created[0].get("webhook_id") == created[1].get("webhook_id"))
    check("the item's data arrived",
          bool(created) and created[0].get("data", {}).get("title") == "watched")
    check("the webhook.test message arrived",
          any(d.get("type") == "webhook.test" for d in deliveries))
    failed = checks.count(False)
    if failed:
        print("---- walk-through output", file=sys.stderr)
        print(output[-4000:], file=sys.stderr)
        for name in ("host.log", "worker.log"):
            print(f"---- {name} (last lines)", file=sys.stderr)
            print(open(os.path.join(logs.name, name)).read()[-3000:], file=sys.stderr)
    print(f"{len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
