# shellcheck shell=bash
# Pinned developer tools kept under target/tools/, so later runs on the same checkout reuse them
# and nothing depends on what happens to be installed by hand. Source it; needs REPO set.

TOOLS_DIR=${REPO}/target/tools

# tools_venv NAME REQUIREMENT... — a virtualenv under target/tools/NAME holding exactly these
# pinned requirements (reinstalled when the pins change); prints its bin directory.
tools_venv() {
  local name=$1
  shift
  local venv=${TOOLS_DIR}/${name} pins="$*"
  if [[ ! -f ${venv}/.pins || $(<"${venv}/.pins") != "${pins}" ]]; then
    echo "[tools] installing ${pins} into target/tools/${name}" >&2
    rm -rf "${venv}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    printf '%s' "${pins}" >"${venv}/.pins"
  fi
  printf '%s\n' "${venv}/bin"
}

# AWS SAM CLI and cfn-lint, both usable offline with AWS_DEFAULT_REGION set.
sam_tools_bin() {
  tools_venv sam-venv aws-sam-cli==1.170.0 cfn-lint==1.58.0
}

# Puts `cargo lambda` on PATH. An installed cargo-lambda is used as is; otherwise the release
# binary published on PyPI (it brings zig for cross-compiling to arm64) goes into a venv in
# seconds. Without pip, `cargo install` compiles it instead (the AWS SDK: 25+ min on 2 cores),
# also cached under target/tools.
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
