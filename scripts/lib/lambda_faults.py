#!/usr/bin/env python3
"""Page faults of one cold start, for scripts/bench-lambda (BENCH_FAULTS=1).

Runs each bootstrap once under `perf record -e page-faults` (every fault, with its address)
against a one-shot local Runtime API, kills it when its first response arrives, and says where
the faults landed in the binary: its code, read-only data, relocation table and the data the
loader relocates, plus, for code, which crate's functions faulted (when the binary has
symbols: build with the `profiling` profile).

A fault on a code or read-only page maps up to 64 KB of cached pages around it (the kernel's
fault-around), so resident code is about (code faults x 64 KB): it grows with how many separate
places the start-up path touches, not with how many bytes it runs. A fault on relocated data is
the loader writing a pointer: one private 4 KB page each.
"""
import argparse
import bisect
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

from bench_lambda import SETTINGS, lambda_env, runtime_api


def record(binary, event, env, out):
    """One cold start under perf; the function is killed as soon as its response arrives."""
    spawned = threading.Event()  # a fast process can answer before Popen() has returned
    holder = {}

    def on_response(handler):
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        spawned.wait(5)
        # perf's child is the function: stop it here, so only start-up and one request count.
        for pid in children(holder["perf"].pid):
            os.kill(pid, signal.SIGKILL)

    server, port, answered = runtime_api(event, on_response)
    holder["perf"] = subprocess.Popen(
        ["perf", "record", "-q", "-c", "1", "-e", "page-faults", "-d", "-o", out, "--", binary],
        env=lambda_env(env, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spawned.set()
    ok = answered.wait(20)
    if not ok:
        holder["perf"].kill()
    holder["perf"].wait()
    server.shutdown()
    if not ok:
        sys.exit(f"{binary}: no response within 20 s under perf")


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return found


def sections(binary):
    """(file offset start, end, name) of every section with bytes in the file."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and m[2] != "NOBITS" and int(m[5], 16):
            found.append((int(m[4], 16), int(m[4], 16) + int(m[5], 16), m[1]))
    return found


def text_symbols(binary):
    """Sorted (virtual address, crate) of the binary's functions; empty when stripped."""
    out = subprocess.run(["nm", "-n", "-C", "--defined-only", binary], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            name = re.sub(r"^<(impl |dyn )?|^(impl |dyn )", "", parts[2])
            m = re.match(r"&?(?:mut )?([A-Za-z_][A-Za-z0-9_]*)", name)
            found.append((int(parts[0], 16), m[1] if m else "?"))
    return found


def code_offset_to_vaddr(binary):
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD" and "E" in parts[6:-1]:
            return int(parts[2], 16) - int(parts[1], 16)
    return 0


def analyse(data, binary):
    out = subprocess.run(["perf", "script", "-i", data, "--show-mmap-events", "-F", "time,addr,ip"],
                         capture_output=True, text=True, check=True).stdout
    own = os.path.realpath(binary)
    maps, faults = [], []
    for line in out.splitlines():
        m = re.search(r"MMAP2? .*\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|0) .*\]: \S+ (.*)$", line)
        if m:
            start = int(m[1], 16)
            maps.append((start, start + int(m[2], 16), int(m[3], 16), m[4].strip()))
            continue
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith(":"):
            faults.append(int(parts[1], 16))
    secs = sections(binary)
    syms = text_symbols(binary)
    starts = [s[0] for s in syms]
    delta = code_offset_to_vaddr(binary)
    by_section, by_crate = collections.Counter(), collections.Counter()
    elsewhere = 0
    for addr in faults:
        mapping = next((m for m in maps if m[0] <= addr < m[1]), None)
        if mapping is None or mapping[3] != own:
            elsewhere += 1
            continue
        offset = addr - mapping[0] + mapping[2]
        section = next((s[2] for s in secs if s[0] <= offset < s[1]), "other")
        by_section[section] += 1
        if section == ".text" and syms:
            i = bisect.bisect_right(starts, offset + delta) - 1
            by_crate[syms[i][1] if i >= 0 else "?"] += 1
    return by_section, by_crate, elsewhere


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True, help="directory with NAME.json per function")
    ap.add_argument("functions", nargs="+", help="name=path-to-binary (name picks the event)")
    args = ap.parse_args()
    env = dict(os.environ, **SETTINGS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.functions:
            name, binary = spec.split("=", 1)
            with open(os.path.join(args.events, f"{name}.json")) as f:
                event = json.load(f)
            data = os.path.join(tmp, f"{name}.data")
            record(binary, event, env, data)
            rows.append((name,) + analyse(data, binary))
    print("page faults of one cold start, in the binary itself:")
    print(f"{'function':13} {'code':>5} {'≈ MB':>5} {'rodata':>6} {'reloc table':>11} "
          f"{'relocated':>9} {'other':>5} {'elsewhere':>9}")
    for name, by_section, _, elsewhere in rows:
        code = by_section[".text"]
        relocated = sum(n for s, n in by_section.items() if s in (".data.rel.ro", ".got", ".init_array", ".fini_array"))
        reloc_table = by_section[".rela.dyn"] + by_section[".relr.dyn"]
        rodata = sum(n for s, n in by_section.items() if s in (".rodata", ".eh_frame", ".eh_frame_hdr", ".gcc_except_table"))
        other = sum(by_section.values()) - code - relocated - reloc_table - rodata
        print(f"{name:13} {code:>5} {code * 64 / 1024:>5.1f} {rodata:>6} {reloc_table:>11} "
              f"{relocated:>9} {other:>5} {elsewhere:>9}")
    print("code: faults in .text (each maps up to 64 KB: ≈ MB resident); rodata: constants and unwind "
          "tables; reloc table: .rela.dyn, read whole at start; relocated: 4 KB pages the loader writes; "
          "elsewhere: libraries, heap, stacks")
    for name, _, by_crate, _ in rows:
        if by_crate:
            top = ", ".join(f"{c} {n}" for c, n in by_crate.most_common(16))
            print(f"{name}: code faults by crate: {top}")


if __name__ == "__main__":
    main()
