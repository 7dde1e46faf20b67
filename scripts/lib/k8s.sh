#!/usr/bin/env bash
# scripts/lib/k8s.sh — a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager) on loopback for tests, envtest style: no kubelet, no
# scheduler, no nodes, so pods never run, but everything the API server does
# itself (CRDs, validation, RBAC, watches, server-side apply) and the garbage
# collector, namespace and service-account controllers are real.
#
# Meant to be *sourced* (by scripts/k8s-testenv, or a test script): sourcing
# only defines functions and never changes the caller's shell options.
#
# The binaries are compiled once from pinned modules and cached, outside the
# checkout, in ${XDG_CACHE_HOME:-~/.cache}/basalt/k8s/k8s-<ver>-etcd-<ver>/bin
# (Go's module and build caches in ${XDG_CACHE_HOME:-~/.cache}/basalt/go), so a
# fresh clone reuses them. The wrapper Go modules that pin every dependency are
# checked in under scripts/k8s-testenv.d/{kubernetes,etcd}; k8s_gen_modules
# regenerates them after K8S_VERSION or ETCD_VERSION changes.
#
# Functions (messages go to stderr, so stdout stays clean for $(...)):
#   k8s_build                  build and cache the binaries unless they are
#                              (cold: ~21 CPU-minutes, ~10 min on 2 idle cores,
#                              1.9 GB of RAM; Go >= 1.26; after that a no-op, and
#                              ~30 s to relink from Go's build cache)
#   k8s_bin_dir                print the bin dir (etcd, kube-apiserver,
#                              kube-controller-manager, kubectl), building first
#                              if needed
#   k8s_start DIR              start etcd (data in DIR/etcd), kube-apiserver and
#                              kube-controller-manager on free 127.0.0.1 ports and
#                              wait until the API server's /readyz says ok and the
#                              controller manager did its first work (~3-5 s, the
#                              API server's own start-up is ~3 CPU-seconds); writes
#                              DIR/kubeconfig, DIR/env, DIR/*.log. A DIR that was
#                              stopped starts again with its data, keys and token
#   k8s_stop DIR               stop what k8s_start started there (TERM to all at
#                              once, KILL after K8S_STOP_GRACE s; ~1-3 s); a no-op
#                              when nothing runs
#   k8s_stop_apiserver DIR     stop only the API server (open watches end within
#                              ~1 s, then clients see refused connections)
#   k8s_start_apiserver DIR    start it again on the same port with the same flags
#   k8s_restart_apiserver DIR  both
#   k8s_gen_modules            (maintainers) regenerate scripts/k8s-testenv.d/*
#                              from the pins below, with the Go module proxy
#
# DIR/env is KEY=VALUE lines (shell-quoted; plain for ordinary paths), meant to
# be sourced with `set -a` or parsed by a test harness:
#   KUBECONFIG                 DIR/kubeconfig: admin (group system:masters), with
#                              the CA inline, current context basalt-test
#   K8S_API_URL                https://127.0.0.1:PORT
#   K8S_ADMIN_TOKEN            bearer token of that admin
#   K8S_CA_FILE                CA that signed the API server's certificate
#                              (IP:127.0.0.1, DNS:localhost); also published in
#                              every namespace as ConfigMap kube-root-ca.crt
#   K8S_ETCD_URL               http://127.0.0.1:PORT
#   K8S_BIN_DIR                the binaries (kubectl is there)
#   K8S_ETCD_PID, K8S_APISERVER_PID, K8S_CONTROLLER_MANAGER_PID
#
# Known behaviour worth a test's retry: a new CRD reports Established ~80 ms
# before its resources can be listed or watched; in between, LIST/WATCH answer
# 429 "storage is (re)initializing" with Retry-After: 1 (creates already work).
#
# Environment honoured:
#   K8S_BIN_DIR          use the binaries in this dir instead of building them
#   K8S_READY_TIMEOUT    seconds to wait for each component (default 60)
#   K8S_STOP_GRACE       seconds between TERM and KILL when stopping (default 10)
#   XDG_CACHE_HOME       the cache root (default ~/.cache)
#
# Every function checks its own errors and returns non-zero instead of relying
# on `set -e` (see services.sh, whose free_port and need_apt_packages we use).

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

# The pins. The staging modules (k8s.io/api, client-go, ...) are v0.<minor>.<patch>.
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16

_K8S_MODULES_DIR=$(CDPATH="" cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/k8s-testenv.d
_K8S_CACHE_ROOT=${XDG_CACHE_HOME:-${HOME}/.cache}/basalt
_K8S_CACHE_DIR=${_K8S_CACHE_ROOT}/k8s/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}
_K8S_BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

_k8s_log() { printf '[k8s] %s\n' "$*" >&2; }

# ------------------------------------------------------------------- binaries

_k8s_have_bins() {
  local b
  for b in "${_K8S_BINARIES[@]}"; do
    [[ -x $1/${b} ]] || return 1
  done
}

# What the cached binaries were built from: the pins and the wrapper modules.
# A change to either rebuilds (quickly, from Go's build cache, unless the
# versions moved).
_k8s_recipe_hash() {
  [[ -f ${_K8S_MODULES_DIR}/kubernetes/go.sum && -f ${_K8S_MODULES_DIR}/etcd/go.sum ]] || {
    _k8s_log "scripts/k8s-testenv.d/{kubernetes,etcd} (the wrapper Go modules) are missing"
    return 1
  }
  # A pin changed without regenerating the modules would build the old
  # version under the new version's name (and stamp it with the new version).
  if ! grep -qx "require k8s.io/kubernetes ${K8S_VERSION}" "${_K8S_MODULES_DIR}/kubernetes/go.mod" \
    || ! grep -qx "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}" "${_K8S_MODULES_DIR}/etcd/go.mod"; then
    _k8s_log "scripts/k8s-testenv.d does not pin kubernetes ${K8S_VERSION} and etcd ${ETCD_VERSION}: run scripts/k8s-testenv gen-modules"
    return 1
  fi
  { printf '%s %s %s\n' "${K8S_VERSION}" "${ETCD_VERSION}" "$(_k8s_ldflags)"
    cat "${_K8S_MODULES_DIR}"/kubernetes/{go.mod,go.sum,tools.go} "${_K8S_MODULES_DIR}"/etcd/{go.mod,go.sum,tools.go}
  } | sha256sum | cut -c1-16
}

# The version the binaries report (kubectl version, /version): what a release
# build stamps from git, which a module build does not have.
_k8s_ldflags() {
  local minor=${K8S_VERSION#v*.}
  minor=${minor%%.*}
  local v=k8s.io/component-base/version
  printf '%s' "-s -w -X ${v}.gitVersion=${K8S_VERSION} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean"
}

# Go's caches under the basalt cache, so that what one clone downloaded and
# compiled, the next reuses. Only in the subshells that run go.
_k8s_go_env() {
  export GOMODCACHE=${_K8S_CACHE_ROOT}/go/mod GOCACHE=${_K8S_CACHE_ROOT}/go/build
  # readonly: the checked-in go.mod/go.sum are the whole truth; no go.work or
  # VCS stamping from the surrounding checkout.
  export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
}

_k8s_need_go() {
  if ! command -v go >/dev/null 2>&1; then
    _k8s_log "building the Kubernetes test binaries needs Go >= 1.26 on PATH (https://go.dev/dl/),"
    _k8s_log "or K8S_BIN_DIR pointing at etcd, kube-apiserver, kube-controller-manager and kubectl"
    return 1
  fi
}

k8s_build() {
  local bin=${_K8S_CACHE_DIR}/bin want
  want=$(_k8s_recipe_hash) || return 1
  if _k8s_have_bins "${bin}" && [[ -f ${bin}/.recipe && $(<"${bin}/.recipe") == "${want}" ]]; then
    return 0
  fi
  _k8s_need_go || return 1
  mkdir -p "${_K8S_CACHE_DIR}" || return 1
  # In a subshell: the Go environment and the lock stay in here.
  (
    # Two test runs starting at once build once.
    if command -v flock >/dev/null 2>&1; then
      flock 9 || exit 1
      if _k8s_have_bins "${bin}" && [[ -f ${bin}/.recipe && $(<"${bin}/.recipe") == "${want}" ]]; then
        exit 0
      fi
    fi
    _k8s_go_env
    tmp=$(mktemp -d "${_K8S_CACHE_DIR}/bin.tmp.XXXXXX") && chmod 0755 "${tmp}" || exit 1
    trap 'rm -rf "${tmp}"' EXIT
    started=${SECONDS}
    _k8s_log "building etcd ${ETCD_VERSION}, kube-apiserver, kube-controller-manager and kubectl ${K8S_VERSION} into ${bin}"
    _k8s_log "  (once per version: from cold caches ~21 CPU-minutes, ~10 min on 2 idle cores, 1.9 GB of RAM)"
    # nice: this usually runs beside a cargo build, which should not wait for it.
    (cd "${_K8S_MODULES_DIR}/etcd" && nice -n 10 go build -trimpath -ldflags "-s -w" \
      -o "${tmp}/etcd" go.etcd.io/etcd/server/v3) >&2 \
      || { _k8s_log "building etcd failed"; exit 1; }
    # One go build for the three: they share most packages, compiled once.
    (cd "${_K8S_MODULES_DIR}/kubernetes" && nice -n 10 go build -trimpath -ldflags "$(_k8s_ldflags)" -o "${tmp}/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl) >&2 \
      || { _k8s_log "building the Kubernetes binaries failed"; exit 1; }
    printf '%s\n' "${want}" >"${tmp}/.recipe"
    # Renamed into place only when complete, so an interrupted build is never
    # mistaken for a cached one.
    rm -rf "${bin}" && mv "${tmp}" "${bin}" || exit 1
    trap - EXIT
    _k8s_log "built in $((SECONDS - started)) s"
  ) 9>"${_K8S_CACHE_DIR}/.lock"
}

k8s_bin_dir() {
  if [[ -n ${K8S_BIN_DIR:-} ]]; then
    _k8s_have_bins "${K8S_BIN_DIR}" || { _k8s_log "K8S_BIN_DIR=${K8S_BIN_DIR} lacks one of ${_K8S_BINARIES[*]}"; return 1; }
    printf '%s\n' "${K8S_BIN_DIR}"
    return 0
  fi
  k8s_build || return 1
  printf '%s\n' "${_K8S_CACHE_DIR}/bin"
}

# Maintainers: rewrite scripts/k8s-testenv.d/{kubernetes,etcd}/{go.mod,go.sum,tools.go}
# for the pins above. k8s.io/kubernetes is not meant to be a dependency: its go.mod
# requires its staging modules at v0.0.0 and replaces them with ./staging/src/...
# paths, which only hold inside its own repository. Here each one it requires is
# replaced with the published v0.<minor>.<patch> instead.
k8s_gen_modules() {
  _k8s_need_go || return 1
  local out=${_K8S_MODULES_DIR:?}
  (
    _k8s_go_env
    export GOFLAGS=-buildvcs=false # go get and go mod tidy write go.mod
    # Each step checked here: errexit does not hold inside a function called from `||`.
    run() { "$@" || { _k8s_log "failed: $*"; exit 1; }; }
    staging=v0.${K8S_VERSION#v1.}
    work=$(mktemp -d) || exit 1
    trap 'rm -rf "${work}"' EXIT

    _k8s_log "kubernetes ${K8S_VERSION} (staging modules at ${staging})"
    run mkdir -p "${work}/kubernetes"
    run cd "${work}/kubernetes"
    run go mod download k8s.io/kubernetes@"${K8S_VERSION}"
    kmod=${GOMODCACHE}/cache/download/k8s.io/kubernetes/@v/${K8S_VERSION}.mod
    run go mod init basalt.local/k8s-testenv/kubernetes 2>/dev/null
    run go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "${kmod}")"
    mods=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "${kmod}" | sort -u)
    [[ -n ${mods} ]] || { _k8s_log "no k8s.io/* v0.0.0 requirements in ${kmod}?"; exit 1; }
    for m in ${mods}; do run go mod edit -replace="${m}=${m}@${staging}"; done
    cat >tools.go <<'EOF'
//go:build tools

// Package tools pins the commands scripts/k8s-testenv builds (generated, with the rest of
// this module, by k8s_gen_modules in scripts/lib/k8s.sh).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
    run go get k8s.io/kubernetes@"${K8S_VERSION}"
    run go mod tidy
    run go mod edit -toolchain=none

    _k8s_log "etcd ${ETCD_VERSION}"
    run mkdir -p "${work}/etcd"
    run cd "${work}/etcd"
    run go mod download go.etcd.io/etcd/server/v3@"${ETCD_VERSION}"
    emod=${GOMODCACHE}/cache/download/go.etcd.io/etcd/server/v3/@v/${ETCD_VERSION}.mod
    run go mod init basalt.local/k8s-testenv/etcd 2>/dev/null
    run go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "${emod}")"
    cat >tools.go <<'EOF'
//go:build tools

// Package tools pins the etcd server scripts/k8s-testenv builds (generated, with the rest of
// this module, by k8s_gen_modules in scripts/lib/k8s.sh); its main package is
// go.etcd.io/etcd/server/v3 itself.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
EOF
    run go get go.etcd.io/etcd/server/v3@"${ETCD_VERSION}"
    run go mod tidy
    run go mod edit -toolchain=none

    for d in kubernetes etcd; do
      run mkdir -p "${out}/${d}"
      run cp "${work}/${d}"/{go.mod,go.sum,tools.go} "${out}/${d}/"
    done
    _k8s_log "wrote ${out}/{kubernetes,etcd}; commit them, then k8s_build"
  )
}

# ------------------------------------------------------------------ processes

# pidfile of NAME in DIR; its pid only if that process is alive and still NAME
# (not a recycled pid). comm is cut at 15 characters: kube-controller.
_k8s_pid() {
  local pidfile=$1/$2.pid pid
  [[ -f ${pidfile} ]] || return 1
  pid=$(<"${pidfile}")
  [[ ${pid} =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null || return 1
  [[ $(cat "/proc/${pid}/comm" 2>/dev/null) == "${2:0:15}" ]] || return 1
  printf '%s\n' "${pid}"
}

# _k8s_spawn DIR NAME BINARY ARG... — start BINARY in its own session (a Ctrl-C
# in the caller's terminal does not reach it: whoever started it stops it),
# output appended to DIR/NAME.log, pid in DIR/NAME.pid. The pid is written by
# the process itself just before exec, so it is right even where setsid forks
# (a caller with job control on).
_k8s_spawn() {
  local dir=$1 name=$2 i
  shift 2
  rm -f "${dir}/${name}.pid"
  printf '==> %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"${dir}/${name}.log"
  # shellcheck disable=SC2016 # $$, $0 and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "${dir}/${name}.pid" "$@" \
    </dev/null >>"${dir}/${name}.log" 2>&1 &
  for ((i = 0; i < 50; i++)); do
    [[ -f ${dir}/${name}.pid ]] && return 0
    sleep 0.05
  done
  _k8s_log "${name} did not start"
  return 1
}

_k8s_log_tail() {
  local log=$1/$2.log
  [[ -f ${log} ]] || return 0
  _k8s_log "last lines of ${log}:"
  tail -n 20 "${log}" | sed 's/^/    /' >&2
}

# _k8s_wait DIR NAME WHAT CMD... — poll CMD (quiet, every 0.1 s) until it
# succeeds, while NAME is alive, for K8S_READY_TIMEOUT seconds.
_k8s_wait() {
  local dir=$1 name=$2 what=$3 deadline
  shift 3
  deadline=$((SECONDS + ${K8S_READY_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    if ! _k8s_pid "${dir}" "${name}" >/dev/null; then
      _k8s_log "${name} exited before ${what}"
      _k8s_log_tail "${dir}" "${name}"
      return 1
    fi
    sleep 0.1
  done
  _k8s_log "${name}: no ${what} after ${K8S_READY_TIMEOUT:-60} s"
  _k8s_log_tail "${dir}" "${name}"
  return 1
}

# _k8s_stop_procs DIR NAME... — TERM them all at once, KILL what is left after
# K8S_STOP_GRACE seconds; returns once they are gone. All at once rather than
# clients first: a sequential stop takes ~6 s (each waits out its own
# connections' shutdown), a parallel one ~2.5 s, and nothing here needs an
# orderly goodbye.
_k8s_stop_procs() {
  local dir=$1 name pid i grace=${K8S_STOP_GRACE:-10} pids=() names=() pidfiles=() left
  shift
  for name in "$@"; do
    if pid=$(_k8s_pid "${dir}" "${name}"); then
      pids+=("${pid}")
      names+=("${name} (pid ${pid})")
    fi
    pidfiles+=("${dir}/${name}.pid")
  done
  # Pidfiles go once their processes are: an interrupted stop can be repeated.
  [[ ${#pids[@]} -gt 0 ]] || { rm -f "${pidfiles[@]}"; return 0; }
  _k8s_log "stopping ${names[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < grace * 10 + 50; i++)); do
    left=()
    for pid in "${pids[@]}"; do
      kill -0 "${pid}" 2>/dev/null && left+=("${pid}")
    done
    [[ ${#left[@]} -gt 0 ]] || { rm -f "${pidfiles[@]}"; return 0; }
    if ((i == grace * 10)); then
      _k8s_log "pid ${left[*]} still running after ${grace} s; sending SIGKILL"
      kill -KILL "${left[@]}" 2>/dev/null || true
    fi
    sleep 0.1
  done
  _k8s_log "pid ${left[*]} survived SIGKILL?"
  return 1
}

# ---------------------------------------------------------------- the cluster

# Keys and certificates of DIR, made once: a restarted DIR keeps its tokens valid.
#   ca.crt/key        the CA; server.crt/key  the API server's, for 127.0.0.1
#   sa.key/sa.pub     RSA pair signing and verifying service-account tokens
_k8s_pki() {
  local pki=$1/pki
  [[ -f ${pki}/ca.crt && -f ${pki}/server.crt && -f ${pki}/sa.pub ]] && return 0
  command -v openssl >/dev/null 2>&1 || need_apt_packages openssl || return 1
  mkdir -p "${pki}" || return 1
  # A CA and a certificate it signed rather than one self-signed certificate:
  # webpki (rustls, kube-rs's default TLS) rejects a CA certificate presented
  # by a server, and the controller manager publishes the CA as kube-root-ca.crt.
  cat >"${pki}/openssl.cnf" <<'EOF'
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
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, IP:10.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  # RSA for the service-account keys, made meanwhile: 2048-bit keygen takes
  # 0.3-1.3 s here, the EC certificates a few milliseconds each.
  local rsa_pid
  openssl genrsa -out "${pki}/sa.key" 2048 2>/dev/null &
  rsa_pid=$!
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  { openssl req -x509 -config "${pki}/openssl.cnf" -extensions ca "${key[@]}" -days 365 \
      -subj "/CN=Basalt test Kubernetes CA" -keyout "${pki}/ca.key" -out "${pki}/ca.crt" 2>/dev/null \
    && openssl req -new -config "${pki}/openssl.cnf" "${key[@]}" -subj "/CN=kube-apiserver" \
      -keyout "${pki}/server.key" -out "${pki}/server.csr" 2>/dev/null \
    && openssl x509 -req -in "${pki}/server.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile "${pki}/openssl.cnf" \
      -extensions server -out "${pki}/server.crt" 2>/dev/null \
    && wait "${rsa_pid}" \
    && openssl rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null; } \
    || { _k8s_log "openssl could not make the test certificates and keys in ${pki}"; return 1; }
  chmod 0600 "${pki}"/*.key
}

# Port line NAME from DIR/ports.
_k8s_port() { awk -v k="$2" '$1 == k { print $2 }' "$1/ports" 2>/dev/null; }

_k8s_readyz() {
  curl -fsS --max-time 2 --cacert "$1/pki/ca.crt" -H "Authorization: Bearer $2" \
    "https://127.0.0.1:$3/readyz" | grep -qx ok
}

_k8s_controllers_ran() {
  local c=(curl -fsS --max-time 2 --cacert "$1/pki/ca.crt" -H "Authorization: Bearer $2" -o /dev/null)
  "${c[@]}" "https://127.0.0.1:$3/api/v1/namespaces/default/serviceaccounts/default" \
    && "${c[@]}" "https://127.0.0.1:$3/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
}

_k8s_etcd_healthy() {
  curl -fsS --max-time 2 "$1/health" | grep -q '"health":"true"'
}

_k8s_write_env() {
  local dir=$1 api_port etcd_port token
  api_port=$(_k8s_port "${dir}" apiserver)
  etcd_port=$(_k8s_port "${dir}" etcd-client)
  token=$(<"${dir}/admin.token")
  {
    printf 'KUBECONFIG=%q\n' "${dir}/kubeconfig"
    printf 'K8S_API_URL=%q\n' "https://127.0.0.1:${api_port}"
    printf 'K8S_ADMIN_TOKEN=%q\n' "${token}"
    printf 'K8S_CA_FILE=%q\n' "${dir}/pki/ca.crt"
    printf 'K8S_ETCD_URL=%q\n' "http://127.0.0.1:${etcd_port}"
    printf 'K8S_BIN_DIR=%q\n' "$(<"${dir}/bin_dir")"
    printf 'K8S_ETCD_PID=%q\n' "$(_k8s_pid "${dir}" etcd)"
    printf 'K8S_APISERVER_PID=%q\n' "$(_k8s_pid "${dir}" kube-apiserver)"
    printf 'K8S_CONTROLLER_MANAGER_PID=%q\n' "$(_k8s_pid "${dir}" kube-controller-manager)"
  } >"${dir}/env.tmp" && mv "${dir}/env.tmp" "${dir}/env"
}

# N distinct free ports: in one python3 run (held all at once, so distinct)
# where there is one, else by services.sh's free_port.
_k8s_free_ports() {
  local n=$1 ports=() p tries=0
  if command -v python3 >/dev/null 2>&1 && python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks), sep="\n")
' "${n}" 2>/dev/null; then
    return 0
  fi
  while ((${#ports[@]} < n)); do
    ((tries++ < 20)) || { _k8s_log "could not find ${n} distinct free ports"; return 1; }
    p=$(free_port) || return 1
    [[ " ${ports[*]} " == *" ${p} "* ]] || ports+=("${p}")
  done
  printf '%s\n' "${ports[@]}"
}

k8s_start() {
  local dir=${1:?usage: k8s_start DIR} bin n
  mkdir -p "${dir}" || return 1
  dir=$(CDPATH="" cd "${dir}" && pwd -P) || return 1
  for n in etcd kube-apiserver kube-controller-manager; do
    if _k8s_pid "${dir}" "${n}" >/dev/null; then
      _k8s_log "${n} from ${dir} is already running; k8s_stop ${dir} first"
      return 1
    fi
  done
  command -v curl >/dev/null 2>&1 || need_apt_packages curl || return 1
  command -v openssl >/dev/null 2>&1 || need_apt_packages openssl || return 1
  bin=$(k8s_bin_dir) || return 1
  printf '%s\n' "${bin}" >"${dir}/bin_dir" || return 1

  local ports etcd_port peer_port api_port
  ports=$(_k8s_free_ports 3) || return 1
  { read -r etcd_port; read -r peer_port; read -r api_port; } <<<"${ports}"
  printf 'etcd-client %s\netcd-peer %s\napiserver %s\n' "${etcd_port}" "${peer_port}" "${api_port}" >"${dir}/ports"

  local started=${EPOCHREALTIME/./} etcd_url=http://127.0.0.1:${etcd_port} peer_url=http://127.0.0.1:${peer_port}
  _k8s_log "starting etcd on ${etcd_url}, kube-apiserver on https://127.0.0.1:${api_port} (files in ${dir})"
  # No fsync: a test cluster, thrown away; it makes every write ~10x cheaper. Progress
  # notifications, as real clusters run etcd (kubeadm: 5 s): without them a restarted API
  # server's watch cache cannot move past its start while nothing is written, and every
  # client's watch of an idle resource ends in 410 Gone ("too old resource version").
  _k8s_spawn "${dir}" etcd "${bin}/etcd" --name basalt-test --data-dir "${dir}/etcd" \
    --listen-client-urls "${etcd_url}" --advertise-client-urls "${etcd_url}" \
    --listen-peer-urls "${peer_url}" --initial-advertise-peer-urls "${peer_url}" \
    --initial-cluster "basalt-test=${peer_url}" --unsafe-no-fsync --log-level warn \
    --watch-progress-notify-interval 5s \
    || { k8s_stop "${dir}"; return 1; }
  # While etcd starts.
  local token pki=${dir}/pki
  _k8s_pki "${dir}" || { k8s_stop "${dir}"; return 1; }
  if [[ ! -s ${dir}/admin.token ]]; then
    (umask 077 && openssl rand -hex 32 >"${dir}/admin.token") || { k8s_stop "${dir}"; return 1; }
  fi
  token=$(<"${dir}/admin.token")
  (umask 077 && printf '%s,admin,admin,system:masters\n' "${token}" >"${dir}/tokens.csv") \
    || { k8s_stop "${dir}"; return 1; }
  _k8s_wait "${dir}" etcd "health on ${etcd_url}" \
    _k8s_etcd_healthy "${etcd_url}" \
    || { k8s_stop "${dir}"; return 1; }

  # The API server's flags, kept for k8s_start_apiserver (one per line).
  # ServiceAccount admission is off: no pod ever runs, and it would make every
  # pod wait for a service account token. Without an endpoint reconciler the
  # `kubernetes` Service has no endpoints; nothing here needs them. The watch
  # termination grace ends open watches (the controller manager's, the code
  # under test's) when it is stopped: without it a TERM waits for them up to
  # the 60 s request timeout.
  printf '%s\n' \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 "--secure-port=${api_port}" \
    "--etcd-servers=${etcd_url}" \
    "--cert-dir=${pki}" "--tls-cert-file=${pki}/server.crt" "--tls-private-key-file=${pki}/server.key" \
    "--token-auth-file=${dir}/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    "--service-account-key-file=${pki}/sa.pub" "--service-account-signing-key-file=${pki}/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none \
    --shutdown-watch-termination-grace-period=1s \
    >"${dir}/kube-apiserver.args" || return 1
  k8s_start_apiserver "${dir}" || { k8s_stop "${dir}"; return 1; }

  local ca_data
  ca_data=$(base64 -w0 <"${pki}/ca.crt") || return 1
  cat >"${dir}/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: basalt-test
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority-data: ${ca_data}
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: basalt-test
  context:
    cluster: basalt-test
    user: admin
current-context: basalt-test
EOF
  chmod 0600 "${dir}/kubeconfig"

  # Only the controllers that work without nodes. No serving port (nothing
  # probes it), no leader election (one instance; a restart would otherwise
  # wait for its old lease to lapse).
  _k8s_spawn "${dir}" kube-controller-manager "${bin}/kube-controller-manager" \
    "--kubeconfig=${dir}/kubeconfig" \
    --controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller \
    "--service-account-private-key-file=${pki}/sa.key" "--root-ca-file=${pki}/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false --secure-port=0 \
    || { k8s_stop "${dir}"; return 1; }
  # Its first work, ~0.3 s after it starts: proof that its controllers run.
  _k8s_wait "${dir}" kube-controller-manager "ServiceAccount default/default and ConfigMap default/kube-root-ca.crt" \
    _k8s_controllers_ran "${dir}" "${token}" "${api_port}" \
    || { k8s_stop "${dir}"; return 1; }
  _k8s_write_env "${dir}" || { k8s_stop "${dir}"; return 1; }
  local ms=$(((${EPOCHREALTIME/./} - started) / 1000))
  _k8s_log "ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s: KUBECONFIG=${dir}/kubeconfig (or source ${dir}/env)"
}

k8s_start_apiserver() {
  local dir=${1:?usage: k8s_start_apiserver DIR} bin port args
  dir=$(CDPATH="" cd "${dir}" && pwd -P) || return 1
  [[ -f ${dir}/kube-apiserver.args && -f ${dir}/bin_dir ]] || { _k8s_log "${dir} has no cluster (k8s_start it first)"; return 1; }
  if _k8s_pid "${dir}" kube-apiserver >/dev/null; then
    _k8s_log "kube-apiserver from ${dir} is already running"
    return 1
  fi
  bin=$(<"${dir}/bin_dir")
  port=$(_k8s_port "${dir}" apiserver)
  mapfile -t args <"${dir}/kube-apiserver.args"
  _k8s_spawn "${dir}" kube-apiserver "${bin}/kube-apiserver" "${args[@]}" || return 1
  _k8s_wait "${dir}" kube-apiserver "/readyz ok on https://127.0.0.1:${port}" \
    _k8s_readyz "${dir}" "$(<"${dir}/admin.token")" "${port}" || { _k8s_stop_procs "${dir}" kube-apiserver; return 1; }
  # The pid changed; k8s_start writes the env itself once everything runs.
  [[ ! -f ${dir}/env ]] || _k8s_write_env "${dir}"
}

k8s_stop_apiserver() {
  local dir=${1:?usage: k8s_stop_apiserver DIR}
  _k8s_stop_procs "${dir}" kube-apiserver
}

k8s_restart_apiserver() {
  local dir=${1:?usage: k8s_restart_apiserver DIR}
  k8s_stop_apiserver "${dir}" && k8s_start_apiserver "${dir}"
}

k8s_stop() {
  local dir=${1:?usage: k8s_stop DIR}
  [[ -d ${dir} ]] || return 0
  _k8s_stop_procs "${dir}" kube-controller-manager kube-apiserver etcd
}

# Executed rather than sourced: run one function by name.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    k8s_build | k8s_bin_dir | k8s_start | k8s_stop | k8s_stop_apiserver | k8s_start_apiserver | k8s_restart_apiserver | k8s_gen_modules) "$@" ;;
    *)
      echo "usage: $0 {k8s_build|k8s_bin_dir|k8s_start|k8s_stop|k8s_stop_apiserver|k8s_start_apiserver|k8s_restart_apiserver|k8s_gen_modules} ARGS..." >&2
      exit 2
      ;;
  esac
fi
