# shellcheck shell=bash
# scripts/lib/images.sh — the Dockerfile's runtime stages, built and run with podman on a
# machine that can pull no image (CI's): `image_check BIN_DIR DATABASE_URL` builds the host,
# worker and operator targets with BINARIES=prebuilt (the binaries in BIN_DIR) on a runtime
# base assembled here from this machine's files — what distroless/cc holds that the binaries
# link (ld.so, libc, libm, libgcc_s), CA certificates, the nonroot user 65532 — instead of
# gcr.io/distroless/cc; then runs each image: the host migrates and serves on DATABASE_URL
# (/health, /ready, `host healthcheck`), the worker serves (/readyz, `worker healthcheck`), the
# operator prints its CRD. Prints `N passed, N failed`; returns non-zero on a failure.
#
# podman in this sandbox (seen with Debian's podman 4.3.1): crun refuses to start containers
# ("cgroups in hybrid mode not supported"), so runc is used; and runc cannot set podman's
# default RLIMIT_NPROC and RLIMIT_NOFILE (1048576) without CAP_SYS_RESOURCE — nor an NPROC of
# 65536, while 32768 works — so containers get lower limits (16384 files, 32768 processes). Containers use the host's network (loopback PostgreSQL).
# Source it (with scripts/lib/services.sh for need_apt_packages); needs REPO set.

_images_log() { printf '[images] %s\n' "$*" >&2; }

_IMAGES_PASSED=0
_IMAGES_FAILED=0
# _images_check DESCRIPTION COMMAND... — one check; safe under `set -e` (the caller's).
_images_check() {
  local what=$1
  shift
  if "$@" >&2; then _images_result 0 "${what}"; else _images_result 1 "${what}"; fi
}

_images_result() {
  if [[ $1 == 0 ]]; then
    _IMAGES_PASSED=$((_IMAGES_PASSED + 1))
    printf 'ok   %s\n' "$2"
  else
    _IMAGES_FAILED=$((_IMAGES_FAILED + 1))
    printf 'FAIL %s\n' "$2"
  fi
}

# Quiet: a check's output is its ok/FAIL line (the command's own output goes to stderr).
_images_fails() { ! "$@" >/dev/null 2>&1; }
_images_body_has() { [[ $(curl -fsS "$1" 2>/dev/null) == *"$2"* ]]; }
_images_same_output() {
  local want=$1
  shift
  cmp -s <("$@" 2>/dev/null) "${want}"
}

_images_podman() {
  podman --runtime runc "$@"
}

_images_run_flags() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [[ ${nofile} == unlimited || ${nofile} -gt 16384 ]] && nofile=16384
  [[ ${nproc} == unlimited || ${nproc} -gt 32768 ]] && nproc=32768
  printf '%s\n' --network host --ulimit "nofile=${nofile}:${nofile}" --ulimit "nproc=${nproc}:${nproc}"
}

# The runtime base: a root filesystem with the shared libraries the binaries in $1 link,
# the CA bundle and /etc/passwd with nonroot (65532), imported as one layer.
_images_base() {
  local bin_dir=$1 tag=$2 ctx lib
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/basalt-image-base.XXXXXX")
  mkdir -p "${ctx}/rootfs/etc/ssl/certs" "${ctx}/rootfs/tmp"
  chmod 1777 "${ctx}/rootfs/tmp"
  for lib in $(ldd "${bin_dir}"/host "${bin_dir}"/worker "${bin_dir}"/operator | awk '$2 == "=>" { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u); do
    mkdir -p "${ctx}/rootfs$(dirname "${lib}")"
    cp -L "${lib}" "${ctx}/rootfs${lib}"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "${ctx}/rootfs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"${ctx}/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"${ctx}/rootfs/etc/group"
  printf 'FROM scratch\nCOPY rootfs/ /\n' >"${ctx}/Containerfile"
  _images_podman build -q -t "${tag}" -f "${ctx}/Containerfile" "${ctx}" >/dev/null
  local rc=$?
  rm -rf "${ctx}"
  return "${rc}"
}

# _images_wait URL — until it answers 2xx (15 s).
_images_wait() {
  local url=$1
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "${url}" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

image_check() {
  local bin_dir=${1:?usage: image_check BIN_DIR DATABASE_URL} database_url=${2:?usage: image_check BIN_DIR DATABASE_URL}
  command -v podman >/dev/null 2>&1 || need_apt_packages podman
  command -v runc >/dev/null 2>&1 || need_apt_packages runc
  local tag suffix ctx target port health_port flags host_cid="" worker_cid=""
  suffix=$$
  tag=localhost/basalt-test-runtime:${suffix}
  mapfile -t flags < <(_images_run_flags)
  _images_log "assembling the runtime base ${tag}"
  if ! _images_base "${bin_dir}" "${tag}"; then
    _images_log "could not build the runtime base"
    return 1
  fi

  ctx=$(mktemp -d "${TMPDIR:-/tmp}/basalt-image-ctx.XXXXXX")
  mkdir -p "${ctx}/prebuilt"
  cp "${REPO}/Dockerfile" "${ctx}/"
  cp "${bin_dir}"/host "${bin_dir}"/worker "${bin_dir}"/operator "${ctx}/prebuilt/"
  for target in host worker operator; do
    _images_log "podman build --target ${target} (BINARIES=prebuilt)"
    _images_check "the Dockerfile's ${target} target builds (runtime on the assembled base)" \
      _images_podman build -q --target "${target}" --build-arg BINARIES=prebuilt \
      --build-arg RUNTIME_IMAGE="${tag}" -t "localhost/basalt-${target}:${suffix}" "${ctx}"
  done
  rm -rf "${ctx}"

  local user
  user=$(_images_podman image inspect --format '{{.Config.User}}' "localhost/basalt-host:${suffix}" 2>/dev/null || true)
  _images_check "the images run as the non-root user 65532 (host image says '${user}')" \
    test "${user}" == 65532:65532

  local env=(-e "DATABASE_URL=${database_url}" -e "JWT_SECRET=image-check-secret-image-check-secret-0123"
    -e "WEBHOOK_ENCRYPTION_KEY=aW1hZ2UtY2hlY2sta2V5LWltYWdlLWNoZWNrLWtleS0=" -e LOG_FORMAT=json)
  _images_check "host image: migrate applies the migrations" \
    _images_podman run --rm "${flags[@]}" "${env[@]}" "localhost/basalt-host:${suffix}" migrate

  port=$(free_port)
  host_cid=$(_images_podman run -d --rm "${flags[@]}" "${env[@]}" -e "BIND_ADDR=127.0.0.1:${port}" \
    "localhost/basalt-host:${suffix}" 2>/dev/null || true)
  _images_check "host image: serve answers /ready on the test PostgreSQL" \
    _images_wait "http://127.0.0.1:${port}/ready"
  _images_check "host image: /health" _images_body_has "http://127.0.0.1:${port}/health" ok
  _images_check "host image: \`host healthcheck\` (Compose's healthcheck) passes" \
    _images_podman run --rm "${flags[@]}" -e "BIND_ADDR=127.0.0.1:${port}" \
    "localhost/basalt-host:${suffix}" healthcheck
  if [[ -n ${host_cid} ]]; then _images_podman stop -t 10 "${host_cid}" >/dev/null 2>&1 || true; fi
  _images_check "host image: \`host healthcheck\` fails once the host stopped" \
    _images_fails _images_podman run --rm "${flags[@]}" -e "BIND_ADDR=127.0.0.1:${port}" \
    "localhost/basalt-host:${suffix}" healthcheck

  health_port=$(free_port)
  worker_cid=$(_images_podman run -d --rm "${flags[@]}" "${env[@]}" -e "WORKER_HEALTH_ADDR=127.0.0.1:${health_port}" \
    "localhost/basalt-worker:${suffix}" 2>/dev/null || true)
  _images_check "worker image: serve answers /readyz" _images_wait "http://127.0.0.1:${health_port}/readyz"
  _images_check "worker image: \`worker healthcheck\` passes" \
    _images_podman run --rm "${flags[@]}" -e "WORKER_HEALTH_ADDR=127.0.0.1:${health_port}" \
    "localhost/basalt-worker:${suffix}" healthcheck
  if [[ -n ${worker_cid} ]]; then _images_podman stop -t 35 "${worker_cid}" >/dev/null 2>&1 || true; fi

  _images_check "operator image: \`operator crd\` prints the checked-in CRD" \
    _images_same_output "${REPO}/helm/basalt/crds/appdeployments.basalt.dev.yaml" \
    _images_podman run --rm "${flags[@]}" "localhost/basalt-operator:${suffix}" crd

  _images_podman rmi -f "localhost/basalt-host:${suffix}" "localhost/basalt-worker:${suffix}" \
    "localhost/basalt-operator:${suffix}" "${tag}" >/dev/null 2>&1
  printf '%s passed, %s failed\n' "${_IMAGES_PASSED}" "${_IMAGES_FAILED}"
  test "${_IMAGES_FAILED}" == 0
}
