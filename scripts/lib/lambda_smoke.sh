# shellcheck shell=bash
# The README's "Lambda locally" walk-through, run for real: every function under
# `cargo lambda watch`, invoked with the checked-in events and through its function URL.
# Source it (needs REPO, scripts/lib/services.sh and scripts/lib/tools.sh), then
#   lambda_smoke ADMIN_DATABASE_URL REDIS_URL
# Creates the database `lambda_smoke`, starts watch on a free loopback port, checks every
# answer, and stops watch and its functions again.

lambda_smoke() {
  local admin_url=$1 redis_url=$2
  ensure_cargo_lambda
  local db_url=${admin_url%/*}/lambda_smoke
  psql "${admin_url}" -Xq -v ON_ERROR_STOP=1 -c 'drop database if exists lambda_smoke' \
    -c 'create database lambda_smoke'

  local port log watch_pid rc=0
  port=$(free_port)
  log=$(mktemp /tmp/basalt-lambda-smoke.XXXXXX)
  (
    export DATABASE_URL=${db_url} REDIS_URL=${redis_url} BASALT_DEV=1 LOG_FORMAT=json \
      JWT_SECRET=lambda-smoke-only-jwt-secret-lambda-smoke-only RUST_LOG=info \
      WEBHOOK_ENCRYPTION_KEY=bGFtYmRhLXNtb2tlLW9ubHktd2ViaG9vay1rZXktMzI=
    # On TERM, watch stops the function processes it started (each in a group of its own).
    exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "${port}" \
      --disable-cors --ignore-changes
  ) >"${log}" 2>&1 &
  watch_pid=$!

  _smoke_fail() {
    echo "lambda smoke: $*" >&2
    echo "---- cargo lambda watch log (last 40 lines)" >&2
    tail -40 "${log}" >&2
    rc=1
  }
  # invoke FUNCTION EVENT EXPECTED-STATUS [TOKEN] — prints the response body.
  _smoke_invoke() {
    local fn=$1 event=$2 want=$3 token=${4:-} out status
    out=$(sed "s/REPLACE_WITH_TOKEN/${token:-REPLACE_WITH_TOKEN}/" "events/invoke/${event}.json" |
      cargo lambda invoke "${fn}" -A 127.0.0.1 -P "${port}" --data-file /dev/stdin 2>&1) || true
    status=$(jq -r '.statusCode // empty' <<<"${out}" 2>/dev/null || true)
    if [[ ${status} != "${want}" ]]; then
      echo "lambda smoke: ${fn} ${event}: expected ${want}, got: ${out}" >&2
      return 1
    fi
    printf '  %-9s %-16s %s\n' "${fn}" "${event}" "${status}" >&2
    jq -r '.body' <<<"${out}"
  }

  local i
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:${port}/" && break
    sleep 0.1
  done

  # The stack's migrations first, as CloudFormation runs them: the migrate function with a
  # custom-resource Create event whose ResponseURL is a loopback stand-in for the presigned S3
  # URL; the answer must be SUCCESS, and the functions below need the schema it made.
  local answer cf_port
  answer=$(mktemp /tmp/basalt-cfn-response.XXXXXX)
  python3 - "${answer}" <<'PY' &
import http.server, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(sys.argv[1] + ".body", "wb") as f:
            f.write(body)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_port))
server.timeout = 120
server.handle_request()
PY
  local answer_pid=$!
  for ((i = 0; i < 50; i++)); do
    [[ -s ${answer} ]] && break
    sleep 0.1
  done
  cf_port=$(<"${answer}")
  jq --arg url "http://127.0.0.1:${cf_port}/cloudformation-response?X-Amz-Signature=smoke" \
    '.ResponseURL = $url' events/custom-resource/create.json |
    cargo lambda invoke migrate -A 127.0.0.1 -P "${port}" --data-file /dev/stdin >/dev/null 2>&1 || true
  wait "${answer_pid}" 2>/dev/null || true
  if ! jq -e '.Status == "SUCCESS" and (.Data.Applied | tonumber) > 0' "${answer}.body" >/dev/null 2>&1; then
    _smoke_fail "migrate: expected a SUCCESS answer with migrations applied, got: $(cat "${answer}.body" 2>/dev/null)"
  else
    printf '  %-9s %-16s %s\n' migrate "(custom resource)" "$(jq -c '{Status, Data}' "${answer}.body")" >&2
  fi
  rm -f "${answer}" "${answer}.body"

  local token=""
  if ! {
    _smoke_invoke health health-ready 200 >/dev/null &&
      _smoke_invoke auth auth-register 201 >/dev/null &&
      token=$(_smoke_invoke auth auth-token 200 | jq -r .access_token) &&
      _smoke_invoke items items-list 401 >/dev/null &&
      _smoke_invoke users users-me 200 "${token}" >/dev/null &&
      _smoke_invoke api-keys api-keys-create 201 "${token}" >/dev/null &&
      _smoke_invoke items items-create 201 "${token}" >/dev/null &&
      _smoke_invoke items items-list 200 "${token}" | jq -e '.items | length == 1' >/dev/null
  }; then
    _smoke_fail "the invoke sequence failed"
  fi

  # The function URL form the README shows, with the chain's CORS and request id.
  local headers
  headers=$(curl -s -D - -o /dev/null -H 'Origin: http://localhost:5173' \
    "http://127.0.0.1:${port}/lambda-url/items/v1/items?limit=10" -H "authorization: Bearer ${token}")
  if ! grep -qi '^HTTP/1.1 200' <<<"${headers}" || ! grep -qi '^x-request-id:' <<<"${headers}" ||
    [[ $(grep -ci '^access-control-allow-origin: http://localhost:5173' <<<"${headers}") != 1 ]]; then
    _smoke_fail "function URL: unexpected response headers: ${headers}"
  else
    printf '  %-9s %-16s %s\n' items "(function URL)" 200 >&2
  fi
  # The scheduled worker, invoked with an EventBridge event: it drains the item.created job
  # the invocations above enqueued (webhook fan-out, to no endpoint here).
  local drained
  drained=$(cargo lambda invoke worker-drain -A 127.0.0.1 -P "${port}" \
    --data-file events/scheduled/worker-drain.json 2>&1) || true
  if ! jq -e '.finish == "empty" and .busy_polls >= 1' <<<"${drained}" >/dev/null 2>&1; then
    _smoke_fail "worker-drain: expected a drained queue, got: ${drained}"
  elif [[ $(psql "${db_url}" -XAtc "select count(*) from jobs where state <> 'completed'") != 0 ]]; then
    _smoke_fail "worker-drain: jobs are left: $(psql "${db_url}" -XAtc 'select kind, state from jobs')"
  else
    printf '  %-9s %-16s %s\n' worker-drain "(scheduled)" "$(jq -c . <<<"${drained}")" >&2
  fi

  # The host is offered by watch but is not a function: it must fail fast, not hang.
  local body
  body=$(curl -s -m 120 "http://127.0.0.1:${port}/lambda-url/host/health" || true)
  if [[ $(jq -r '.errorType // empty' <<<"${body}" 2>/dev/null) != NotAFunction ]]; then
    _smoke_fail "host under watch: expected a NotAFunction error, got: ${body}"
  else
    printf '  %-9s %-16s %s\n' host "(function URL)" NotAFunction >&2
  fi

  kill -TERM "${watch_pid}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "${watch_pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${watch_pid}" 2>/dev/null || true
  wait "${watch_pid}" 2>/dev/null || true
  rm -f "${log}"
  return "${rc}"
}
