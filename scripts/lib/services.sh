#!/usr/bin/env bash
# scripts/lib/services.sh — helpers to run throwaway/dev PostgreSQL and Redis
# servers on loopback, installing the Debian packages they need on demand.
#
# Meant to be *sourced* (by scripts/test and scripts/dev): sourcing only
# defines functions and never changes the caller's shell options. Run directly
# it dispatches to one function, handy for manual clean-up, e.g.
#   scripts/lib/services.sh pg_stop .data/postgres
#   scripts/lib/services.sh redis_stop 6379 .data/redis
#
# Functions (messages go to stderr, so stdout stays clean for $(...)):
#   need_apt_packages PKG...       install missing Debian packages
#   pg_bin_dir                     print newest /usr/lib/postgresql/<ver>/bin
#   pg_start DATADIR PORT [test|dev] [TLS_DIR]
#                                  init (if needed) + start a cluster on
#                                  127.0.0.1:PORT; sets BASALT_PG_STARTED=1 if
#                                  this call started it, 0 if it was already up;
#                                  with TLS_DIR (see tls_test_certs) it also
#                                  speaks TLS with TLS_DIR/server.{crt,key}
#   pg_stop DATADIR                fast shutdown; no-op if not running
#   redis_start PORT [DIR] [TLS_DIR]
#                                  start a non-persistent redis on
#                                  127.0.0.1:PORT; sets BASALT_REDIS_STARTED;
#                                  with TLS_DIR it speaks only TLS on PORT
#                                  (also on [::1] where there is one)
#   redis_stop PORT [DIR]          stop the redis started with that DIR
#   tls_test_certs DIR             a throwaway CA (DIR/ca.crt), a server
#                                  certificate it signed for DNS:localhost only
#                                  (DIR/server.crt, server.key), and an
#                                  unrelated CA (DIR/other-ca.crt)
#   free_port                      print a currently free 127.0.0.1 TCP port
#
# Environment honoured:
#   PG_BIN_DIR         use these PostgreSQL server binaries instead of the
#                      newest /usr/lib/postgresql/<ver>/bin
#   BASALT_PG_TUNING   test|dev, default tuning when pg_start gets no 3rd arg
#                      (default: dev)
#
# Every function checks its own errors and returns non-zero instead of relying
# on `set -e`: bash disables errexit inside functions called from `if`, `||`
# or `&&`, which is exactly how callers use them for retries and clean-up.

_svc_log() { printf '[services] %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, via sudo otherwise.
_svc_as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    _svc_log "need root (or sudo) to run: $*"
    return 1
  fi
}

_svc_pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Set once `apt-get update` ran in this shell, so we refresh package lists at
# most once per script run (and never when nothing is missing).
_BASALT_APT_UPDATED=${_BASALT_APT_UPDATED:-0}

need_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    _svc_pkg_installed "${pkg}" || missing+=("${pkg}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    _svc_log "missing packages (${missing[*]}) and no apt-get to install them; install them manually"
    return 1
  fi
  _svc_log "installing: ${missing[*]}"
  # The lock timeout makes us wait for e.g. unattended-upgrades on a fresh VM
  # instead of failing immediately. All output goes to stderr so that callers
  # capturing our stdout (pg_bin_dir) only ever get a path.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
  if [[ ${_BASALT_APT_UPDATED} != 1 ]]; then
    _svc_as_root "${apt[@]}" update >&2 || { _svc_log "apt-get update failed"; return 1; }
    _BASALT_APT_UPDATED=1
  fi
  _svc_as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 \
    || { _svc_log "apt-get install ${missing[*]} failed"; return 1; }
}

# ---------------------------------------------------------------- PostgreSQL

_pg_is_bin_dir() {
  [[ -x $1/postgres && -x $1/initdb && -x $1/pg_ctl && -x $1/pg_isready ]]
}

# Newest installed server bin dir, without installing anything.
_pg_find_bin_dir() {
  if [[ -n ${PG_BIN_DIR:-} ]]; then
    _pg_is_bin_dir "${PG_BIN_DIR}" || { _svc_log "PG_BIN_DIR=${PG_BIN_DIR} has no postgres/initdb/pg_ctl"; return 1; }
    printf '%s\n' "${PG_BIN_DIR}"
    return 0
  fi
  local d best=""
  # sort -V so that 9.6 < 10 < 15 < 16.
  while IFS= read -r d; do
    _pg_is_bin_dir "${d}" && best=${d}
  done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
  [[ -n ${best} ]] || return 1
  printf '%s\n' "${best}"
}

pg_bin_dir() {
  _pg_find_bin_dir 2>/dev/null && return 0
  need_apt_packages postgresql || return 1
  _pg_find_bin_dir || { _svc_log "postgresql installed but no server binaries under /usr/lib/postgresql/*/bin"; return 1; }
}

# A cluster must be run by the binaries of its own major version.
_pg_bin_dir_for() {
  local datadir=$1 ver
  if [[ -f ${datadir}/PG_VERSION && -z ${PG_BIN_DIR:-} ]]; then
    ver=$(<"${datadir}/PG_VERSION")
    if _pg_is_bin_dir "/usr/lib/postgresql/${ver}/bin"; then
      printf '%s\n' "/usr/lib/postgresql/${ver}/bin"
      return 0
    fi
    _svc_log "${datadir} is a PostgreSQL ${ver} cluster but /usr/lib/postgresql/${ver}/bin is not installed"
    _svc_log "install postgresql-${ver}, or delete ${datadir} to recreate it with the installed version"
    return 1
  fi
  pg_bin_dir
}

# initdb, pg_ctl and postgres refuse to run as root, so as root we run them
# as the `postgres` system user. From / so that an unreadable caller cwd
# (e.g. under /root) does not trip them up.
_pg_as_owner() {
  if [[ ${EUID} -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

_pg_ensure_os_user() {
  [[ ${EUID} -eq 0 ]] || return 0
  id -u postgres >/dev/null 2>&1 && return 0
  _svc_log "creating system user postgres"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin postgres \
    || { _svc_log "could not create the postgres user"; return 1; }
}

# Quote a value for postgresql.conf.
_pg_conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

_pg_log_tail() {
  local log=$1/server.log
  if [[ -f ${log} ]]; then
    _svc_log "last lines of ${log}:"
    tail -n 15 "${log}" | sed 's/^/    /' >&2
  fi
}

# Port written in postmaster.pid (line 4) by a running server.
_pg_running_port() { sed -n 4p "$1/postmaster.pid" 2>/dev/null; }

_pg_is_running() {
  local datadir=$1 bindir=$2
  [[ -f ${datadir}/postmaster.pid ]] || return 1
  _pg_as_owner "${bindir}/pg_ctl" -D "${datadir}" status >/dev/null 2>&1
}

pg_start() {
  local datadir=${1:?usage: pg_start DATADIR PORT [test|dev] [TLS_DIR]} port=${2:?usage: pg_start DATADIR PORT [test|dev] [TLS_DIR]}
  local tuning=${3:-${BASALT_PG_TUNING:-dev}} tls_dir=${4:-} bindir
  tuning=${tuning#--}
  case ${tuning} in test | dev) ;; *) _svc_log "pg_start: tuning must be test or dev, got '${tuning}'"; return 1 ;; esac
  BASALT_PG_STARTED=0

  mkdir -p "${datadir}" || return 1
  datadir=$(CDPATH="" cd "${datadir}" && pwd -P) || return 1
  # Install in this shell (not inside $(...)) so the apt-get-update-once flag sticks.
  _pg_find_bin_dir >/dev/null 2>&1 || need_apt_packages postgresql || return 1
  bindir=$(_pg_bin_dir_for "${datadir}") || return 1
  _pg_ensure_os_user || return 1

  if [[ ${EUID} -eq 0 ]]; then
    if [[ $(stat -c %U "${datadir}") != postgres ]]; then
      chown -R postgres:postgres "${datadir}" || return 1
    fi
    # A root-only parent dir (mktemp -d, /root/...) would make initdb fail
    # with a confusing error; say what is wrong instead.
    if ! runuser -u postgres -- test -w "${datadir}" 2>/dev/null; then
      _svc_log "user postgres cannot reach ${datadir}: a parent directory is not traversable by it (chmod o+x it, or use another location)"
      return 1
    fi
  fi

  if _pg_is_running "${datadir}" "${bindir}"; then
    local running_port
    running_port=$(_pg_running_port "${datadir}")
    if [[ ${running_port} == "${port}" ]]; then
      _svc_log "PostgreSQL in ${datadir} already running on port ${port}; reusing it (will not stop it)"
      return 0
    fi
    _svc_log "PostgreSQL in ${datadir} is already running on port ${running_port}, not ${port}; stop it first (pg_stop ${datadir})"
    return 1
  fi

  if [[ ! -f ${datadir}/PG_VERSION ]]; then
    _svc_log "initialising PostgreSQL cluster in ${datadir} ($(basename "$(dirname "${bindir}")"))"
    local initdb=("${bindir}/initdb" -D "${datadir}" -U postgres --auth=trust -E UTF8)
    # Test clusters are throwaway: skip the fsyncs initdb does at the end.
    [[ ${tuning} == test ]] && initdb+=(--no-sync)
    # C.UTF-8 gives UTF-8 ctype with byte-order collation; some systems lack
    # that locale, and the plain C locale is an equally good fallback.
    local initlog
    initlog=$(mktemp) || return 1
    if ! _pg_as_owner "${initdb[@]}" --locale=C.UTF-8 >"${initlog}" 2>&1; then
      _svc_log "initdb with --locale=C.UTF-8 failed; retrying with --no-locale"
      if ! _pg_as_owner "${initdb[@]}" --no-locale >>"${initlog}" 2>&1; then
        _svc_log "initdb failed:"
        sed 's/^/    /' "${initlog}" >&2
        rm -f "${initlog}"
        return 1
      fi
    fi
    rm -f "${initlog}"
    # Our settings live in basalt.conf (rewritten on every start) so a port
    # change or a test/dev switch never needs hand-editing postgresql.conf.
    printf "\n# Added by scripts/lib/services.sh\ninclude_if_exists = 'basalt.conf'\n" >>"${datadir}/postgresql.conf" || return 1
  fi

  # Unix sockets are limited to ~107 bytes of path; in a deeply nested
  # checkout fall back to TCP only rather than failing to start.
  local sockdir=${datadir}
  if (( ${#sockdir} + 20 > 107 )); then
    _svc_log "data dir path too long for a unix socket; PostgreSQL will listen on TCP only"
    sockdir=""
  fi
  if [[ -n ${tls_dir} ]]; then
    # PostgreSQL refuses a key that others may read, or that another user owns.
    local f
    for f in server.crt server.key; do
      install -m 0600 "${tls_dir}/${f}" "${datadir}/${f}" || return 1
      if [[ ${EUID} -eq 0 ]]; then chown postgres:postgres "${datadir}/${f}" || return 1; fi
    done
  fi
  {
    echo "# Written by scripts/lib/services.sh on every start; edits are overwritten."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = ${port}"
    echo "unix_socket_directories = $(_pg_conf_quote "${sockdir}")"
    echo "max_connections = 200"
    if [[ -n ${tls_dir} ]]; then
      # Plain connections stay allowed (trust auth on loopback): TLS is the client's choice.
      echo "ssl = on"
      echo "ssl_cert_file = 'server.crt'"
      echo "ssl_key_file = 'server.key'"
    fi
    if [[ ${tuning} == test ]]; then
      # Data is thrown away after the run: trade crash-safety for speed.
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } >"${datadir}/basalt.conf" || return 1
  [[ ${EUID} -eq 0 ]] && chown postgres:postgres "${datadir}/basalt.conf"

  _svc_log "starting PostgreSQL on 127.0.0.1:${port} (${tuning} tuning${tls_dir:+, TLS}, data ${datadir})"
  # pg_ctl detaches the postmaster into its own session, so a Ctrl-C in the
  # caller's terminal does not reach it: our callers stop it explicitly.
  if ! _pg_as_owner "${bindir}/pg_ctl" -D "${datadir}" -l "${datadir}/server.log" -w -t 60 start >/dev/null 2>&1; then
    _svc_log "PostgreSQL failed to start on 127.0.0.1:${port} (port in use?)"
    _pg_log_tail "${datadir}"
    # pg_ctl may give up while the postmaster lingers; don't leave it behind.
    pg_stop "${datadir}" >/dev/null 2>&1 || true
    return 1
  fi

  local i
  for ((i = 0; i < 60; i++)); do
    if "${bindir}/pg_isready" -q -h 127.0.0.1 -p "${port}" -U postgres -d postgres; then
      # shellcheck disable=SC2034 # read by the caller to know what to stop
      BASALT_PG_STARTED=1
      return 0
    fi
    sleep 0.5
  done
  _svc_log "PostgreSQL started but is not accepting connections on 127.0.0.1:${port}"
  _pg_log_tail "${datadir}"
  pg_stop "${datadir}" >/dev/null 2>&1 || true
  return 1
}

pg_stop() {
  local datadir=${1:?usage: pg_stop DATADIR} bindir pid i
  [[ -f ${datadir}/postmaster.pid ]] || return 0
  if bindir=$(_pg_bin_dir_for "${datadir}" 2>/dev/null); then
    _pg_is_running "${datadir}" "${bindir}" || return 0
    _svc_log "stopping PostgreSQL in ${datadir}"
    _pg_as_owner "${bindir}/pg_ctl" -D "${datadir}" -m fast -w -t 60 stop >/dev/null 2>&1 && return 0
  fi
  # No matching binaries, or pg_ctl failed: SIGINT is "fast shutdown".
  pid=$(head -n1 "${datadir}/postmaster.pid" 2>/dev/null) || return 0
  [[ ${pid} =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null || return 0
  kill -INT "${pid}" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.1
  done
  _svc_log "PostgreSQL (pid ${pid}) ignored fast shutdown; sending SIGQUIT"
  kill -QUIT "${pid}" 2>/dev/null || true
}

# --------------------------------------------------------------------- Redis

_redis_dir() { printf '%s\n' "${2:-${TMPDIR:-/tmp}/basalt-redis-$1}"; }

# PING over redis-cli, or raw RESP over /dev/tcp when redis-cli is absent; with
# TLS_DIR over TLS, trusting TLS_DIR/ca.crt (redis-cli only).
_redis_ping() {
  local port=$1 tls_dir=${2:-} reply=""
  if [[ -n ${tls_dir} ]]; then
    reply=$(timeout 2 redis-cli --tls --cacert "${tls_dir}/ca.crt" -h 127.0.0.1 -p "${port}" ping 2>/dev/null) || return 1
  elif command -v redis-cli >/dev/null 2>&1; then
    reply=$(timeout 2 redis-cli -h 127.0.0.1 -p "${port}" ping 2>/dev/null) || return 1
  else
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && head -c 7 <&3' _ "${port}" 2>/dev/null) || return 1
    reply=${reply#+}
    reply=${reply%$'\r'*}
  fi
  [[ ${reply} == PONG ]]
}

# Pid from DIR's pidfile, only if it is a live redis-server.
_redis_pid() {
  local pidfile="$1/redis-$2.pid" pid
  [[ -f ${pidfile} ]] || return 1
  pid=$(<"${pidfile}")
  [[ ${pid} =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null || return 1
  [[ $(cat "/proc/${pid}/comm" 2>/dev/null) == redis-server* ]] || return 1
  printf '%s\n' "${pid}"
}

_redis_log_tail() {
  if [[ -f $1/redis-$2.log ]]; then
    _svc_log "last lines of $1/redis-$2.log:"
    tail -n 15 "$1/redis-$2.log" | sed 's/^/    /' >&2
  fi
}

redis_start() {
  local port=${1:?usage: redis_start PORT [DIR] [TLS_DIR]} tls_dir=${3:-} dir i
  dir=$(_redis_dir "$@")
  BASALT_REDIS_STARTED=0
  if ! command -v redis-server >/dev/null 2>&1; then
    need_apt_packages redis-server || return 1
  fi
  # TLS pings need redis-cli (Debian's redis-tools, which redis-server depends on).
  if [[ -n ${tls_dir} ]] && ! command -v redis-cli >/dev/null 2>&1; then
    need_apt_packages redis-tools || return 1
  fi
  local listen=(--bind 127.0.0.1 --port "${port}")
  if [[ -n ${tls_dir} ]]; then
    # TLS only (port 0 closes the plain port); `-::1` binds [::1] too where it exists, for
    # clients that resolve localhost to it first. No client certificates are asked for.
    listen=(--bind 127.0.0.1 -::1 --port 0 --tls-port "${port}"
      --tls-cert-file "${tls_dir}/server.crt" --tls-key-file "${tls_dir}/server.key"
      --tls-ca-cert-file "${tls_dir}/ca.crt" --tls-auth-clients no)
  fi
  mkdir -p "${dir}" || return 1
  dir=$(CDPATH="" cd "${dir}" && pwd -P) || return 1

  if _redis_pid "${dir}" "${port}" >/dev/null && _redis_ping "${port}" "${tls_dir}"; then
    _svc_log "Redis from ${dir} already running on port ${port}; reusing it (will not stop it)"
    return 0
  fi
  if _redis_ping "${port}"; then
    _svc_log "another Redis already answers on 127.0.0.1:${port}; choose another port (or point REDIS_URL at it)"
    return 1
  fi

  _svc_log "starting Redis on 127.0.0.1:${port} (${tls_dir:+TLS only, }no persistence, files in ${dir})"
  # No persistence: it is a cache/rate-limit store for tests and dev.
  # Backgrounded under setsid rather than --daemonize: we learn its pid at
  # once (a daemon forks before binding, so a taken port would only show up
  # as a PING timeout), and its own session keeps a Ctrl-C in the caller's
  # terminal away from it, so the caller decides when it stops.
  local pid
  setsid redis-server "${listen[@]}" --save '' --appendonly no \
    --daemonize no --dir "${dir}" --pidfile "${dir}/redis-${port}.pid" \
    --logfile "${dir}/redis-${port}.log" </dev/null >/dev/null 2>&1 &
  pid=$!

  for ((i = 0; i < 50; i++)); do
    if _redis_ping "${port}" "${tls_dir}"; then
      # shellcheck disable=SC2034 # read by the caller to know what to stop
      BASALT_REDIS_STARTED=1
      return 0
    fi
    # $! is redis itself unless job control made setsid fork; then the
    # pidfile is the only handle on it.
    kill -0 "${pid}" 2>/dev/null || _redis_pid "${dir}" "${port}" >/dev/null || break
    sleep 0.2
  done
  _svc_log "Redis did not answer PING on 127.0.0.1:${port} (port in use?)"
  _redis_log_tail "${dir}" "${port}"
  kill -TERM "${pid}" 2>/dev/null || true
  redis_stop "${port}" "${dir}" >/dev/null 2>&1 || true
  return 1
}

redis_stop() {
  local port=${1:?usage: redis_stop PORT [DIR]} dir pid i
  dir=$(_redis_dir "$@")
  # Only stop the server our pidfile names: never shut down a Redis on that
  # port that somebody else started.
  pid=$(_redis_pid "${dir}" "${port}") || { rm -f "${dir}/redis-${port}.pid"; return 0; }
  _svc_log "stopping Redis on port ${port}"
  if command -v redis-cli >/dev/null 2>&1; then
    timeout 5 redis-cli -h 127.0.0.1 -p "${port}" shutdown nosave >/dev/null 2>&1 || true
  fi
  kill -0 "${pid}" 2>/dev/null && kill -TERM "${pid}" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "${pid}" 2>/dev/null || { rm -f "${dir}/redis-${port}.pid"; return 0; }
    sleep 0.1
  done
  kill -KILL "${pid}" 2>/dev/null || true
  rm -f "${dir}/redis-${port}.pid"
}

# ----------------------------------------------------------------------- TLS

tls_test_certs() {
  local dir=${1:?usage: tls_test_certs DIR} ca
  command -v openssl >/dev/null 2>&1 || need_apt_packages openssl || return 1
  mkdir -p "${dir}" || return 1
  # Extensions spelled out, not left to the system's openssl.cnf: webpki (rustls) insists on
  # a CA:TRUE root and a server certificate with a subjectAltName.
  cat >"${dir}/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  # P-256 keys: generated at once, unlike RSA, and spoken by every client involved.
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  for ca in ca other-ca; do
    openssl req -x509 -config "${dir}/openssl.cnf" -extensions ca "${key[@]}" -days 2 \
      -subj "/CN=Basalt test ${ca}" -keyout "${dir}/${ca}.key" -out "${dir}/${ca}.crt" 2>/dev/null \
      || { _svc_log "openssl could not make the test CA ${ca}"; return 1; }
  done
  { openssl req -new -config "${dir}/openssl.cnf" "${key[@]}" -subj "/CN=localhost" \
      -keyout "${dir}/server.key" -out "${dir}/server.csr" 2>/dev/null \
    && openssl x509 -req -in "${dir}/server.csr" -CA "${dir}/ca.crt" -CAkey "${dir}/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 2 -extfile "${dir}/openssl.cnf" \
      -extensions server -out "${dir}/server.crt" 2>/dev/null; } \
    || { _svc_log "openssl could not make the test server certificate"; return 1; }
  chmod 0600 "${dir}"/*.key
}

# ---------------------------------------------------------------------- misc

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    # Let the kernel pick: bind port 0 and report what we got.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return 0
  fi
  # No python (bare Debian images): probe random high ports; a refused
  # connect means nothing listens there.
  local i port
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      printf '%s\n' "${port}"
      return 0
    fi
  done
  _svc_log "could not find a free port"
  return 1
}

# Executed rather than sourced: run one function by name.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    need_apt_packages | pg_bin_dir | pg_start | pg_stop | redis_start | redis_stop | tls_test_certs | free_port) "$@" ;;
    *)
      echo "usage: $0 {need_apt_packages|pg_bin_dir|pg_start|pg_stop|redis_start|redis_stop|tls_test_certs|free_port} ARGS..." >&2
      exit 2
      ;;
  esac
fi
