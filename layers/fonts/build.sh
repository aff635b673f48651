#!/usr/bin/env bash
# Builds the caption fonts folder that serves both as the Lambda layer's content (it unpacks to
# /opt/fonts) and as the fonts local runs and tests use: Noto faces from Debian's packages, so a
# caption in Japanese, Arabic, Hindi, Hebrew, Russian or Greek renders with real glyphs.
#
#   layers/fonts/build.sh
#
# Output: layers/fonts/build/fonts/*.{ttf,ttc}. Idempotent: a folder whose stamp matches the
# wanted file list is left alone, so re-running costs well under a second.
#
# Emoji come in colour from Noto Color Emoji (CBDT bitmaps, which swash scales to any size);
# the renderer also embeds the monochrome Noto Emoji as its last fallback.
set -euo pipefail

# package:path-in-package, one per font file; only these are copied out of the packages.
FILES=(
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansHebrew-Bold.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf"
  "fonts-noto-core:usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf"
  # One collection covers Japanese, Simplified and Traditional Chinese and Korean; Regular is
  # the smaller of the two weights (19 MB) and bold captions fall back to it.
  "fonts-noto-cjk:usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
  "fonts-noto-color-emoji:usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build/fonts"
cache="$here/.cache"
# The stamp lives outside build/: that folder is the layer, unpacked as is under /opt.
stamp="$cache/build.stamp"
want="$(printf '%s\n' "${FILES[@]}")"

up_to_date() {
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
  local entry
  for entry in "${FILES[@]}"; do
    [[ -s "$out/$(basename "${entry#*:}")" ]] || return 1
  done
}

if up_to_date; then
  echo "fonts layer: up to date in $out"
  exit 0
fi

packages=()
for entry in "${FILES[@]}"; do
  pkg="${entry%%:*}"
  [[ " ${packages[*]-} " == *" $pkg "* ]] || packages+=("$pkg")
done

mkdir -p "$cache" "$out"
for pkg in "${packages[@]}"; do
  if ! ls "$cache/${pkg}"_*.deb >/dev/null 2>&1; then
    echo "fonts layer: downloading $pkg"
    # apt-get download needs no root, but it needs package lists; a fresh machine may have none.
    if ! (cd "$cache" && apt-get download -qq "$pkg" 2>/dev/null); then
      if [[ "$(id -u)" == 0 ]]; then
        apt-get update -qq
        (cd "$cache" && apt-get download -qq "$pkg")
      else
        echo "fonts layer: apt-get download $pkg failed; run 'apt-get update' as root first" >&2
        exit 1
      fi
    fi
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for pkg in "${packages[@]}"; do
  deb="$(ls "$cache/${pkg}"_*.deb | sort -V | tail -n1)"
  dpkg-deb -x "$deb" "$tmp/$pkg"
done

# Start clean so a font dropped from the list does not linger in the layer.
rm -f "$out"/*
for entry in "${FILES[@]}"; do
  pkg="${entry%%:*}"
  path="${entry#*:}"
  install -m 0644 "$tmp/$pkg/$path" "$out/$(basename "$path")"
done

echo "$want" > "$stamp"
echo "fonts layer: built $out ($(du -sh "$out" | cut -f1))"
