#!/usr/bin/env bash
# Builds espeak-ng, the offline narrator, as a tree that serves as the Lambda layer's content (it
# unpacks to /opt: /opt/bin/espeak-ng and its voices in /opt/share/espeak-ng-data) and that local
# runs may use as is (the narrator finds the data beside the binary).
#
#   layers/espeak/build.sh [x86_64|arm64|all]     (default: this machine's arch)
#
# Output: layers/espeak/build/<arch>/{bin/espeak-ng,share/espeak-ng-data/}, plus
# layers/espeak/build/<arch>.zip for the LayerVersion. Idempotent: a tree whose stamp matches is
# left alone, so re-running costs well under a second; a first build takes about half a minute.
#
# Why from source, not Debian's binary packages: Debian's libespeak-ng1 links libpcaudio0, which
# pulls in PulseAudio and ALSA and their dozen libraries, none of which a Lambda has. Built here
# with no audio output, no sonic, klatt, mbrola or speech-player, the binary links only libc and
# libm (libespeak-ng is linked in statically), and every glibc symbol it binds is at most
# GLIBC_2.34, the glibc of the provided.al2023 runtime (checked below, and by the layer's test).
#
# The source is espeak-ng 1.52.0.1 as vendored by the espeak-rs-sys crate, fetched with cargo and
# pinned by layers/espeak/source/Cargo.lock. The voice data is compiled by a build for this
# machine; it is byte-order dependent only, so the little-endian arm64 tree reuses it.
# Needs cmake and a C compiler (and for the other arch a cross compiler and qemu-user, which runs
# the foreign binary once before it ships): installed with apt-get when missing, as root.
set -euo pipefail

CRATE="espeak-rs-sys"
CRATE_VERSION="0.2.0"
ESPEAK_VERSION="1.52.0.1"
# Every optional part off: synthesis to a WAV file needs none of them. SONIC_LIB/SONIC_INC are
# set so the CMake files do not try to clone sonic from its repository when libsonic is absent.
CMAKE_OPTIONS=(
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_INSTALL_PREFIX=/opt
  -DBUILD_SHARED_LIBS=OFF
  -DENABLE_TESTS=OFF
  -DUSE_LIBPCAUDIO=OFF
  -DUSE_LIBSONIC=OFF -DSONIC_LIB=unused -DSONIC_INC=unused
  -DUSE_MBROLA=OFF
  -DUSE_KLATT=OFF
  -DUSE_SPEECHPLAYER=OFF
  -DUSE_ASYNC=OFF
  -DCMAKE_EXE_LINKER_FLAGS=-s
)
# The provided.al2023 Lambda runtime's glibc; no shipped binary may need a newer symbol.
GLIBC_CEILING="2.34"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_root="$here/build"
cache="$here/.cache"
want_stamp="$CRATE==$CRATE_VERSION espeak-ng $ESPEAK_VERSION ${CMAKE_OPTIONS[*]}"

log() { printf 'espeak layer: %s\n' "$*" >&2; }

host_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo "unsupported host architecture $(uname -m)" >&2; exit 1 ;;
  esac
}

gnu_triple() {
  case "$1" in
    x86_64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    *) echo "unknown arch '$1' (x86_64 or arm64)" >&2; exit 2 ;;
  esac
}

# Debian packages the build needs, installed only when missing (and only as root).
need_packages() {
  local missing=() entry
  for entry in "$@"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  ((${#missing[@]})) || return 0
  if [[ "$(id -u)" != 0 ]]; then
    log "missing ${missing[*]}: install them with apt-get (as root) first"
    exit 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  }
}

# The vendored espeak-ng source in cargo's registry cache, fetched if it is not there yet.
source_dir() {
  local manifest="$here/source/Cargo.toml" dir
  cargo fetch --locked --quiet --manifest-path "$manifest" >&2
  dir="$(cargo metadata --locked --offline --format-version 1 --manifest-path "$manifest" |
    python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
for p in meta["packages"]:
    if p["name"] == sys.argv[1] and p["version"] == sys.argv[2]:
        print(os.path.join(os.path.dirname(p["manifest_path"]), "espeak-ng"))
' "$CRATE" "$CRATE_VERSION")"
  [[ -f "$dir/CMakeLists.txt" ]] || { log "no espeak-ng source in $CRATE $CRATE_VERSION"; exit 1; }
  grep -q "VERSION $ESPEAK_VERSION" "$dir/CMakeLists.txt" || {
    log "$CRATE $CRATE_VERSION does not vendor espeak-ng $ESPEAK_VERSION"; exit 1; }
  echo "$dir"
}

# Highest GLIBC_x.y any of the given ELF files binds; empty when none binds glibc.
glibc_needed() {
  readelf -V --wide "$@" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
    sort -uV | tail -n1
}

# Runs a binary of the given arch: directly for this machine's, through qemu-user otherwise.
run_arch() {
  local arch="$1"; shift
  if [[ "$arch" == "$(host_arch)" ]]; then
    "$@"
  elif [[ "$arch" == arm64 ]] && command -v qemu-aarch64 >/dev/null 2>&1; then
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"
  elif [[ "$arch" == x86_64 ]] && command -v qemu-x86_64 >/dev/null 2>&1; then
    qemu-x86_64 -L /usr/x86_64-linux-gnu "$@"
  else
    return 127
  fi
}

# Compiles espeak-ng for one arch in its own CMake build folder; with `data`, the voice data too
# (which runs the fresh binary, so only for this machine's arch).
cmake_build() {
  local arch="$1" with_data="$2" src bdir triple
  src="$(source_dir)"
  bdir="$cache/cmake-$arch"
  triple="$(gnu_triple "$arch")"
  local cross=()
  if [[ "$arch" != "$(host_arch)" ]]; then
    need_packages "$triple-gcc:gcc-$triple" "$triple-g++:g++-$triple"
    cross=(
      -DCMAKE_SYSTEM_NAME=Linux
      -DCMAKE_SYSTEM_PROCESSOR="${triple%%-*}"
      -DCMAKE_C_COMPILER="$triple-gcc"
      -DCMAKE_CXX_COMPILER="$triple-g++"
    )
  fi
  rm -rf "$bdir"
  mkdir -p "$bdir"
  log "compiling espeak-ng $ESPEAK_VERSION for $arch"
  cmake -S "$src" -B "$bdir" "${CMAKE_OPTIONS[@]}" ${cross[@]+"${cross[@]}"} >"$bdir/configure.log" 2>&1 || {
    tail -n 30 "$bdir/configure.log" >&2; exit 1; }
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  make -C "$bdir" -j"$jobs" espeak-ng-bin >"$bdir/make.log" 2>&1 || { tail -n 30 "$bdir/make.log" >&2; exit 1; }
  if [[ "$with_data" == data ]]; then
    log "compiling the voice data"
    make -C "$bdir" -j"$jobs" data >"$bdir/data.log" 2>&1 || { tail -n 30 "$bdir/data.log" >&2; exit 1; }
  fi
}

build_one() {
  local arch="$1"
  gnu_triple "$arch" >/dev/null
  local tree="$out_root/$arch"
  local stamp="$cache/$arch.stamp"

  if [[ -x "$tree/bin/espeak-ng" && -d "$tree/share/espeak-ng-data" && -f "$out_root/$arch.zip" &&
        -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]]; then
    echo "espeak layer ($arch): up to date in $tree"
    return 0
  fi
  need_packages cmake:cmake cc:gcc c++:g++ make:make readelf:binutils
  mkdir -p "$cache"

  # The voice data comes from this machine's build, whichever arch the tree is for.
  local host data_dir
  host="$(host_arch)"
  data_dir="$cache/cmake-$host/espeak-ng-data"
  if [[ "$arch" == "$host" || ! -f "$data_dir/phondata" || ! -f "$cache/data.stamp" ||
        "$(cat "$cache/data.stamp")" != "$want_stamp" ]]; then
    cmake_build "$host" data
    echo "$want_stamp" > "$cache/data.stamp"
  fi
  if [[ "$arch" != "$host" ]]; then
    cmake_build "$arch" bin
    # To run the foreign binary once before it ships (below).
    case "$arch" in
      arm64) need_packages qemu-aarch64:qemu-user ;;
      x86_64) need_packages qemu-x86_64:qemu-user ;;
    esac
  fi

  local built="$cache/cmake-$arch/src/espeak-ng"
  local needed
  needed="$(glibc_needed "$built")"
  if [[ -n "$needed" ]] && [[ "$(printf '%s\n%s\n' "$needed" "$GLIBC_CEILING" | sort -V | tail -n1)" != "$GLIBC_CEILING" ]]; then
    log "$arch binary needs GLIBC_$needed, newer than the Lambda runtime's $GLIBC_CEILING"
    exit 1
  fi

  rm -rf "$tree" "$out_root/$arch.zip"
  mkdir -p "$tree/bin" "$tree/share"
  install -m 0755 "$built" "$tree/bin/espeak-ng"
  cp -R "$data_dir" "$tree/share/espeak-ng-data"

  # Speak one line with the tree's own data where this machine can run the binary.
  local probe="$cache/probe-$arch.wav"
  rm -f "$probe"
  if echo "vidpipe" | run_arch "$arch" "$tree/bin/espeak-ng" --path="$tree/share" -b 1 --stdin -v en-us -w "$probe" &&
     [[ -s "$probe" ]]; then
    log "$arch binary speaks ($(stat -c %s "$probe") bytes of WAV)"
  else
    log "the built espeak-ng ($arch) failed to speak"
    exit 1
  fi
  rm -f "$probe"

  (cd "$tree" && python3 -m zipfile -c "../$arch.zip" bin share)
  echo "$want_stamp" > "$stamp"
  echo "espeak layer ($arch): built $tree ($(du -sh "$tree" | cut -f1), needs GLIBC_${needed:-none})"
}

target="${1:-$(host_arch)}"
if [[ "$target" == "all" ]]; then
  build_one x86_64
  build_one arm64
else
  build_one "$target"
fi
