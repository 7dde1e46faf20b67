# shellcheck shell=bash
# schemathesis against the host's own /openapi.json, in scripts/test. Source it (needs REPO,
# scripts/lib/services.sh and scripts/lib/tools.sh), then
#   openapi_fuzz HOST_BIN DATABASE_URL REDIS_URL
# Starts the host on a free loopback port, registers three users and gives the first one an
# item, an endpoint and an API key; then runs schemathesis (pinned, scripts/schemathesis/
# schemathesis.toml and basalt_hooks.py) three times, every check each time: as the first
# user over every operation but DELETE /v1/users/me (it would end the run's own account); as
# the second over the operations that take an id, with the first user's ids in every path,
# where the hooks' check refuses any success or 403; and DELETE /v1/users/me as a third user.
# Prints "N passed, N failed" (operations).

_st_log() { printf '[schemathesis] %s\n' "$*" >&2; }

# _st_json METHOD URL TOKEN BODY — the response body of one call.
_st_json() {
  curl -fsS -X "$1" "$2" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} \
    ${4:+-d "$4"}
}

# _st_totals JUNIT... — "N passed, N failed" over the test cases of the JUnit reports.
_st_totals() {
  python3 - "$@" <<'PY'
import sys
import xml.etree.ElementTree as ET
passed = failed = 0
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
print(f"{passed} passed, {failed} failed")
PY
}

openapi_fuzz() {
  local host_bin=$1 db_url=$2 redis_url=$3
  local st port dir rc=0
  st=$(schemathesis_tools_bin)/schemathesis
  port=$(free_port)
  dir=$(mktemp -d /tmp/basalt-schemathesis.XXXXXX)
  local api="http://127.0.0.1:${port}"
  (
    # Budgets out of the way (the fuzzer is one client sending thousands of requests); cheap
    # bcrypt; webhooks may point at loopback receivers (the seeded endpoint does).
    export DATABASE_URL=${db_url} REDIS_URL=${redis_url} BASALT_DEV=1 LOG_FORMAT=json \
      RUST_LOG=error JWT_SECRET=fuzz-only-jwt-secret-fuzz-only-jwt-secret-fuzz \
      WEBHOOK_ENCRYPTION_KEY=ZTJlLW9ubHktd2ViaG9vay1rZXktZTJlLW9ubHktd2U= \
      WEBHOOK_ALLOW_INSECURE=1 WEBHOOK_ALLOW_PRIVATE_TARGETS=1 BCRYPT_COST=4 \
      BIND_ADDR=127.0.0.1:${port} RATE_LIMIT_DEFAULT=1000000/60 RATE_LIMIT_AUTH=1000000/60 \
      RATE_LIMIT_ACCOUNT=1000000/60
    "${host_bin}" migrate >"${dir}/migrate.log" 2>&1
    exec "${host_bin}" serve >"${dir}/host.log" 2>&1
  ) &
  local host_pid=$! i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "${api}/ready" 2>/dev/null && break
    sleep 0.1
  done
  local a="" b="" c="" item="" hook="" key=""
  if _st_json POST "${api}/v1/auth/register" "" '{"email":"fuzz-a@example.com","password":"fuzz password a"}' >/dev/null &&
    _st_json POST "${api}/v1/auth/register" "" '{"email":"fuzz-b@example.com","password":"fuzz password b"}' >/dev/null &&
    _st_json POST "${api}/v1/auth/register" "" '{"email":"fuzz-c@example.com","password":"fuzz password c"}' >/dev/null; then
    c=$(_st_json POST "${api}/v1/auth/token" "" '{"email":"fuzz-c@example.com","password":"fuzz password c"}' | jq -r .access_token)
    a=$(_st_json POST "${api}/v1/auth/token" "" '{"email":"fuzz-a@example.com","password":"fuzz password a"}' | jq -r .access_token)
    b=$(_st_json POST "${api}/v1/auth/token" "" '{"email":"fuzz-b@example.com","password":"fuzz password b"}' | jq -r .access_token)
    item=$(_st_json POST "${api}/v1/items" "${a}" '{"title":"the first user'"'"'s"}' | jq -r .id)
    hook=$(_st_json POST "${api}/v1/webhooks" "${a}" '{"url":"http://127.0.0.1:9/hooks","events":["item.created"]}' | jq -r .id)
    key=$(_st_json POST "${api}/v1/api-keys" "${a}" '{"name":"the first user'"'"'s"}' | jq -r .id)
  fi
  if [[ -z ${a} || -z ${b} || -z ${c} || -z ${item} || -z ${hook} || -z ${key} ]]; then
    _st_log "could not seed the two users"
    tail -20 "${dir}/host.log" >&2
    kill -TERM "${host_pid}" 2>/dev/null || true
    wait "${host_pid}" 2>/dev/null || true
    rm -rf "${dir}"
    return 1
  fi
  local config=${REPO}/scripts/schemathesis/schemathesis.toml
  export PYTHONPATH=${REPO}/scripts/schemathesis${PYTHONPATH:+:${PYTHONPATH}}
  _st_log "every operation as one user, every check"
  # From the run's own directory: schemathesis keeps a cache under its working directory.
  (cd "${dir}" && "${st}" --no-color --config-file "${config}" run "${api}/openapi.json" --checks all \
    -H "Authorization: Bearer ${a}" --exclude-name 'DELETE /v1/users/me' \
    --report junit --report-junit-path "${dir}/own.xml" >&2) || rc=$?
  _st_log "the operations that take an id, as another user with the first one's ids"
  local others
  others=$(printf '{"item":["%s"],"webhook":["%s"],"key":["%s"]}' "${item}" "${hook}" "${key}")
  (cd "${dir}" && BASALT_ST_OTHER_IDS=${others} "${st}" --no-color --config-file "${config}" run "${api}/openapi.json" --checks all \
    -H "Authorization: Bearer ${b}" --include-path-regex '\{id\}' --phases examples,coverage,fuzzing \
    --report junit --report-junit-path "${dir}/other.xml" >&2) || rc=$?
  _st_log "DELETE /v1/users/me, as a third user (its first success ends that account)"
  (cd "${dir}" && "${st}" --no-color --config-file "${config}" run "${api}/openapi.json" --checks all \
    -H "Authorization: Bearer ${c}" --include-name 'DELETE /v1/users/me' \
    --report junit --report-junit-path "${dir}/delete.xml" >&2) || rc=$?
  if ((rc != 0)); then
    _st_log "---- host log (last 20 lines)"
    tail -20 "${dir}/host.log" >&2 || true
  fi
  if [[ -s ${dir}/own.xml && -s ${dir}/other.xml && -s ${dir}/delete.xml ]]; then
    echo "schemathesis: $(_st_totals "${dir}/own.xml" "${dir}/other.xml" "${dir}/delete.xml")"
  else
    echo "schemathesis: 0 passed, 1 failed (no report)"
    rc=1
  fi
  kill -TERM "${host_pid}" 2>/dev/null || true
  wait "${host_pid}" 2>/dev/null || true
  rm -rf "${dir}"
  return "${rc}"
}
