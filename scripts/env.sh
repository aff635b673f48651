# Source me: puts the project's own tools (.tools/) first on PATH.
_vidpipe_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_vidpipe_root/.tools/venv/bin:$_vidpipe_root/.tools/node/node_modules/.bin:$PATH"
unset _vidpipe_root
# A clean clone gains nothing from incremental caches, which cost gigabytes of disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
