#!/usr/bin/env python3
"""The rate limiter's cost in Redis, for scripts/bench: CPU per call and memory per key.

Runs the limiter's own Lua script (read from shared/src/rate_limit/redis_store.rs, so the
figures are of the code that ships) over many distinct keys shaped like the limiter's
(`<prefix>:rl:{user:<uuid>|GET /v1/items}`), next to an empty `return 1` script called the same
way, in the same run: Redis's own accounting (`INFO commandstats`, usec_per_call) gives each
one's CPU per call, and `INFO memory` the bytes each key adds. Importable (`measure`) and
runnable alone: `bench_redis.py --port 6379 --repo .`.
"""
import argparse
import re
import socket
import uuid


class Redis:
    """The least RESP client that pipelines: enough for a benchmark, no dependency."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.buf = b""

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(*args))
        return self._reply()

    def pipeline(self, commands, batch=1000):
        replies = []
        for i in range(0, len(commands), batch):
            chunk = commands[i:i + batch]
            self.sock.sendall(b"".join(self.encode(*c) for c in chunk))
            replies.extend(self._reply() for _ in chunk)
        return replies

    def info(self, section):
        fields = {}
        for line in self.call("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields[k] = v
        return fields


def limiter_script(repo):
    source = open(f"{repo}/shared/src/rate_limit/redis_store.rs").read()
    match = re.search(r'const GCRA_LUA: &str = r"(.*?)";', source, re.S)
    if not match:
        raise SystemExit("GCRA_LUA not found in shared/src/rate_limit/redis_store.rs")
    return match.group(1)


def usec_per_call(r):
    stats = r.info("commandstats").get("cmdstat_evalsha", "")
    match = re.search(r"calls=(\d+),usec=(\d+)", stats)
    calls, usec = int(match.group(1)), int(match.group(2))
    return usec / calls, calls


def measure(host, port, repo, keys=100_000, prefix="bench"):
    """Returns the figures as a dict and prints them."""
    r = Redis(host, port)
    r.call("FLUSHALL")
    names = [f"{prefix}:rl:{{user:{uuid.uuid4()}|GET /v1/items}}" for _ in range(keys)]
    limiter = r.call("SCRIPT", "LOAD", limiter_script(repo))
    empty = r.call("SCRIPT", "LOAD", "return 1")
    # The floor of any GCRA on Redis's clock: the three calls it cannot do without (TIME, GET,
    # SET with an expiry) and no arithmetic. What the limiter costs beyond it is its own.
    floor = r.call("SCRIPT", "LOAD", "local t = redis.call('TIME') redis.call('GET', KEYS[1]) "
                                     "redis.call('SET', KEYS[1], t[1], 'PX', 60000) return 1")
    # The same without the clock: what reading and writing one key with an expiry costs alone.
    store = r.call("SCRIPT", "LOAD", "redis.call('GET', KEYS[1]) "
                                     "redis.call('SET', KEYS[1], '1', 'PX', 60000) return 1")
    # 10 per 600 s (the sign-in account budget): one request takes 60 s of budget, so every
    # key is still held (active) when memory is read. At 300/60 a key lives 0.2 s after one
    # request: GCRA keys expire as soon as their budget is whole.
    budget = ("10", "60000000")
    figures = {}
    for name, sha, args in [("empty", empty, ()), ("first", limiter, budget),
                            ("again", limiter, budget), ("floor", floor, ()),
                            ("store", store, ())]:
        # `first` creates every key, `again` updates them (GET finds a value): the two paths.
        if name == "first":
            before = int(r.info("memory")["used_memory"])
        r.call("CONFIG", "RESETSTAT")
        replies = r.pipeline([("EVALSHA", sha, 1, key, *args) for key in names])
        figures[name], calls = usec_per_call(r)
        assert calls == keys, calls
        if name == "first":
            # The script answers the budget in use before the request: none, for a new key.
            assert all(reply == 0 for reply in replies), "a new key had budget in use"
            figures["bytes_per_key"] = (int(r.info("memory")["used_memory"]) - before) / keys
            figures["keys_held"] = r.call("DBSIZE")
    r.call("FLUSHALL")
    print(f"Redis, the limiter's script over {keys} distinct keys (INFO commandstats, same run):")
    print(f"  empty script `return 1`      {figures['empty']:6.2f} µs per call")
    for name, what in [("first", "new key (GET miss, SET)"), ("again", "known key (GET, SET)")]:
        print(f"  limiter, {what:22} {figures[name]:6.2f} µs per call  "
              f"{figures[name] / figures['empty']:4.2f}× the empty script (target ≤ 3×)")
    print(f"  floor: TIME, GET, SET … PX     {figures['floor']:6.2f} µs per call  "
          f"{figures['floor'] / figures['empty']:4.2f}× (the calls any GCRA on Redis's clock makes)")
    print(f"  floor: GET, SET … PX           {figures['store']:6.2f} µs per call  "
          f"{figures['store'] / figures['empty']:4.2f}× (one key read and written with an expiry)")
    print(f"  memory per active key        {figures['bytes_per_key']:6.0f} bytes "
          f"(INFO memory, {figures['keys_held']} keys held; target ≤ 200)")
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--keys", type=int, default=100_000)
    args = ap.parse_args()
    measure(args.host, args.port, args.repo, args.keys)


if __name__ == "__main__":
    main()
