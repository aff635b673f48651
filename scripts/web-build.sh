#!/usr/bin/env bash
# Builds the web app (web/) into web/dist/, which `vidpipe serve` embeds. Idempotent: `npm ci`
# runs only when the lockfile changed, and the build only when a source file did; a run with
# nothing to do takes well under a second.
#
#   scripts/web-build.sh          build if anything changed
#   scripts/web-build.sh --force  build anyway
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"

log() { printf 'web-build: %s\n' "$*" >&2; }

command -v npm >/dev/null 2>&1 || {
  log "installing nodejs and npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
}

# Dependencies, exactly as locked.
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
lock_stamp="node_modules/.vidpipe-lock.sha256"
if [[ ! -f "$lock_stamp" || "$(cat "$lock_stamp")" != "$lock_sum" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_sum" > "$lock_stamp"
fi

# Everything the bundle is made from; the OpenAPI document too, since the types come from it.
src_sum="$( { find src -type f -print0 | sort -z | xargs -0 sha256sum;
              sha256sum index.html package-lock.json tsconfig.json vite.config.ts ../shared/http/openapi.json; } \
            | sha256sum | cut -d' ' -f1)"
# The stamp sits outside dist/, so it is not embedded and served with the app.
dist_stamp="node_modules/.vidpipe-dist.sha256"
if [[ "${1:-}" != "--force" && -f "$dist_stamp" && -f dist/index.html && "$(cat "$dist_stamp")" == "$src_sum" ]]; then
  exit 0
fi
log "building web/dist"
# The API's types are generated from its OpenAPI document; a stale copy fails the type check.
npx --no-install openapi-typescript ../shared/http/openapi.json -o src/api.gen.ts >&2
npx --no-install tsc --noEmit
npx --no-install vite build --logLevel warn >&2
# The stamp covers the regenerated types as well (they are part of src/).
src_sum="$( { find src -type f -print0 | sort -z | xargs -0 sha256sum;
              sha256sum index.html package-lock.json tsconfig.json vite.config.ts ../shared/http/openapi.json; } \
            | sha256sum | cut -d' ' -f1)"
echo "$src_sum" > "$dist_stamp"
