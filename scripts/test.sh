#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, then checks formatting and
# lints, then runs every test (unit, property, conformance, end-to-end media tests judged by
# ffprobe and pixels, CLI). CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
# The web app's dist/ is embedded in `vidpipe serve`, so it is built before cargo compiles it.
scripts/web-build.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features vidpipe-cli/browser-tests --locked -- -D warnings
# Property tests draw fresh cases on every developer run; CI replays one fixed draw so a landing
# never depends on luck. A case found locally becomes a named unit test.
if [ "${CI:-}" = "true" ]; then export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261201}"; fi
cargo test --workspace --locked "$@"
# The bounded load run of `vidpipe serve` (ignored by default: minutes of CPU), with the whole
# suite only.
if [ "$#" -eq 0 ]; then
  cargo test --locked -p vidpipe-tests --test suite serve_load -- --ignored --nocapture
  # The browser tests, in a build of their own (see cli/Cargo.toml's browser-tests feature).
  cargo test --locked -p vidpipe-cli --features browser-tests --test browser
fi
