// scripts/bench-worker.d/graphile.mjs — graphile-worker, the peer that scripts/bench-worker
// measures Basalt's worker against: one process, graphile-worker's default settings, one
// no-op task (`noop`).
//
//   node graphile.mjs run            work until SIGTERM, then print one JSON line of the
//                                    enqueue→start latencies seen (µs) and exit 0:
//                                    {"kind":"noop","latency_us":{"n","p50","p90","p99","max"}}
//   node graphile.mjs schema-only    install or upgrade graphile's schema and exit
//
// DATABASE_URL names the database. The task records `now - enqueued_at_us` at its start
// when the payload carries `enqueued_at_us` (wall-clock µs since the epoch, set by the
// enqueuer just before it inserts), the same measure Basalt's `testbed.noop` takes.
//
// Signals are handled here, not by graphile (`noHandleSignals`): its own handler ends the
// process by re-raising the signal, which would leave no chance to print the figures. The
// worker settings themselves (concurrency, poll interval, pool size, …) are left at defaults.
// Its log is cut to warnings and errors, as Basalt's worker runs with RUST_LOG=warn: by
// default graphile writes a line per completed job, which would measure logging.
import { performance } from "node:perf_hooks";
import { writeSync } from "node:fs";
import { Logger, run, runMigrations } from "graphile-worker";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  console.error("graphile.mjs: DATABASE_URL is not set");
  process.exit(2);
}

// Wall-clock µs: the time origin is wall-clock, performance.now() is monotonic and sub-ms.
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

const latencies = [];

const logger = new Logger((scope) => (level, message) => {
  if (level === "error" || level === "warning") {
    console.error(`[graphile${scope.label ? `:${scope.label}` : ""}] ${level}: ${message}`);
  }
});

const taskList = {
  noop: async (payload) => {
    const at = payload?.enqueued_at_us;
    if (typeof at === "number") latencies.push(nowUs() - at);
  },
};

// The same summary as Basalt's testbed: n, p50, p90, p99, max (nearest rank), in µs.
function summary(values) {
  const v = Float64Array.from(values).sort();
  const rank = (q) => (v.length ? v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)] : 0);
  return {
    n: v.length,
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    max: v.length ? v[v.length - 1] : 0,
  };
}

const mode = process.argv[2] ?? "run";
if (mode === "schema-only") {
  await runMigrations({ connectionString, logger });
} else if (mode === "run") {
  const runner = await run({ connectionString, taskList, logger, noHandleSignals: true });
  let stopping = false;
  const stop = async () => {
    if (stopping) process.exit(130); // a second signal: at once
    stopping = true;
    await runner.stop();
    // Synchronous, so the line is out before the process ends.
    writeSync(1, `${JSON.stringify({ kind: "noop", latency_us: summary(latencies) })}\n`);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await runner.promise;
} else {
  console.error(`graphile.mjs: unknown mode ${mode} (run | schema-only)`);
  process.exit(2);
}
