# shellcheck shell=bash
# frontend/ in scripts/test and scripts/dev. Source it (needs REPO and scripts/lib/services.sh).
#   frontend_install        npm ci from the committed lockfile, npm's cache under the basalt cache
#   frontend_checks         the generated client is current, tsc --noEmit, biome ci, vitest
#   frontend_e2e HOST_BIN WORKER_BIN DATABASE_URL REDIS_URL
#                           Playwright in Debian's chromium against the real host, worker,
#                           PostgreSQL and Redis, and the production build served by vite
#                           preview, every one on a free loopback port; prints "N passed, N failed"
# Screenshots of each page and the failures' traces stay in frontend/test-results/.

FRONTEND_NPM_CACHE=${XDG_CACHE_HOME:-${HOME}/.cache}/basalt/npm

_fe_log() { printf '[frontend] %s\n' "$*" >&2; }

frontend_install() {
  if ! command -v npm >/dev/null 2>&1; then
    need_apt_packages nodejs npm || return 1
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if ((major < 20)); then
    _fe_log "Node ${major} is too old: frontend/ needs Node 20.19 or newer"
    return 1
  fi
  (cd "${REPO}/frontend" && npm ci --no-fund --no-audit --prefer-offline --cache "${FRONTEND_NPM_CACHE}" >&2)
}

# _fe_totals JSON KIND — "N passed, N failed" from a vitest or Playwright JSON report.
_fe_totals() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let passed, failed;
    if (process.argv[2] === "vitest") { passed = r.numPassedTests; failed = r.numFailedTests; }
    else { passed = r.stats.expected + r.stats.flaky; failed = r.stats.unexpected; }
    console.log(`${passed} passed, ${failed} failed`);
  ' "$1" "$2"
}

frontend_checks() {
  local rc=0 report
  (
    cd "${REPO}/frontend" || exit 1
    # The typed client must be what openapi.json generates.
    npx --no-install openapi-typescript ../openapi.json --default-non-nullable false \
      -o src/api/schema.d.ts --check >&2 ||
      { _fe_log "src/api/schema.d.ts is stale: npm run generate (in frontend/)"; exit 1; }
    npx --no-install tsc --noEmit >&2
    npx --no-install biome ci . >&2
  ) || return 1
  report=$(mktemp /tmp/basalt-vitest.XXXXXX.json)
  (cd "${REPO}/frontend" && npx --no-install vitest run --reporter=default \
    --reporter=json --outputFile.json="${report}" >&2) || rc=$?
  [[ -s ${report} ]] && echo "vitest: $(_fe_totals "${report}" vitest)"
  rm -f "${report}"
  return "${rc}"
}

# _fe_wait URL WHAT — until URL answers (30 s).
_fe_wait() {
  local i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  _fe_log "$2 did not come up at $1"
  return 1
}

frontend_e2e() {
  local host_bin=$1 worker_bin=$2 db_url=$3 redis_url=$4
  command -v chromium >/dev/null 2>&1 || need_apt_packages chromium || return 1
  local api_port health_port web_port dir rc=0 pids=()
  api_port=$(free_port)
  health_port=$(free_port)
  web_port=$(free_port)
  dir=$(mktemp -d /tmp/basalt-e2e.XXXXXX)
  local api="http://127.0.0.1:${api_port}" web="http://127.0.0.1:${web_port}"
  # A short re-authentication window, so that the test of an old sign-in need not wait
  # minutes; sign-in budgets for one address are generous, the per-account one small (the
  # rate-limit test exhausts it on an account of its own).
  local reauth=10
  (
    export DATABASE_URL=${db_url} REDIS_URL=${redis_url} BASALT_DEV=1 LOG_FORMAT=json \
      RUST_LOG=warn JWT_SECRET=e2e-only-jwt-secret-e2e-only-jwt-secret-e2e \
      WEBHOOK_ENCRYPTION_KEY=ZTJlLW9ubHktd2ViaG9vay1rZXktZTJlLW9ubHktd2U= \
      WEBHOOK_ALLOW_INSECURE=1 WEBHOOK_ALLOW_PRIVATE_TARGETS=1 \
      BIND_ADDR=127.0.0.1:${api_port} WORKER_HEALTH_ADDR=127.0.0.1:${health_port} \
      CORS_ALLOWED_ORIGINS=${web} REAUTH_WINDOW_SECONDS=${reauth} \
      RATE_LIMIT_AUTH=1000/60 RATE_LIMIT_ACCOUNT=5/600
    "${host_bin}" migrate >"${dir}/migrate.log" 2>&1
    "${worker_bin}" serve >"${dir}/worker.log" 2>&1 &
    echo $! >"${dir}/worker.pid"
    exec "${host_bin}" serve >"${dir}/host.log" 2>&1
  ) &
  pids+=($!)
  (
    cd "${REPO}/frontend" || exit 1
    VITE_API_URL=${api} VITE_REAUTH_WINDOW_SECONDS=${reauth} node node_modules/vite/bin/vite.js \
      build --logLevel warn >&2 || exit 1
    # exec'd node itself (not npx), so that the PID below is the server's.
    exec node node_modules/vite/bin/vite.js preview --host 127.0.0.1 --port "${web_port}" \
      --strictPort >"${dir}/preview.log" 2>&1
  ) &
  pids+=($!)
  if _fe_wait "${api}/ready" "the host" && _fe_wait "${web}/" "vite preview"; then
    (
      cd "${REPO}/frontend" || exit 1
      rm -rf test-results
      BASALT_E2E_BASE_URL=${web} BASALT_E2E_API_URL=${api} BASALT_E2E_REAUTH_SECONDS=${reauth} \
        BASALT_E2E_CHROMIUM=$(command -v chromium) npx --no-install playwright test >&2
    ) || rc=$?
    if [[ -s ${REPO}/frontend/test-results/results.json ]]; then
      echo "playwright: $(_fe_totals "${REPO}/frontend/test-results/results.json" playwright)"
    else
      echo "playwright: 0 passed, 1 failed (no report)"
      rc=1
    fi
  else
    rc=1
  fi
  if ((rc != 0)); then
    _fe_log "---- vite preview log (last 10 lines)"
    tail -10 "${dir}/preview.log" >&2 || true
    _fe_log "---- host log (last 30 lines)"
    tail -30 "${dir}/host.log" >&2 || true
    _fe_log "---- worker log (last 30 lines)"
    tail -30 "${dir}/worker.log" >&2 || true
  fi
  # The host and vite preview are the exec'd subshells themselves; the worker is the host
  # subshell's child.
  if [[ -f ${dir}/worker.pid ]]; then kill -TERM "$(<"${dir}/worker.pid")" 2>/dev/null || true; fi
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  rm -rf "${dir}"
  return "${rc}"
}
