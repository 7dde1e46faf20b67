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
