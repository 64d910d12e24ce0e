#!/usr/bin/env bash
# Copies the Middlebury 2006 "Aloe" frame (left view + ground-truth disparity) out of Debian's
# opencv-doc package into the folder benchmarks/bench_quality.py reads
# (${G2MONO_DATA_DIR:-${XDG_CACHE_HOME:-~/.cache}/g2mono_ros}/real). Needs apt (Debian/Ubuntu);
# no root: `apt-get download` only fetches the .deb (about 96 MB, deleted afterwards).
set -euo pipefail
root="${G2MONO_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/g2mono_ros}"
dest="$root/real"
files=(aloeL.jpg aloeGT.png)
if [ -f "$dest/${files[0]}" ] && [ -f "$dest/${files[1]}" ]; then
  echo "fetch_real_frames: already in $dest"
  exit 0
fi
command -v apt-get >/dev/null || { echo "fetch_real_frames: needs apt-get (Debian/Ubuntu)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download opencv-doc >/dev/null 2>&1) \
  || { echo "fetch_real_frames: 'apt-get download opencv-doc' failed (package index? run apt-get update)" >&2; exit 1; }
deb="$(ls "$work"/opencv-doc_*.deb)"
data="./usr/share/doc/opencv-doc/examples/data"
# dpkg-deb where present; else the .deb's data tarball through ar.
if command -v dpkg-deb >/dev/null; then
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "${files[@]/#/$data/}"
else
  (cd "$work" && ar x "$deb" && tar -x -f data.tar.* "${files[@]/#/$data/}")
fi
mkdir -p "$dest"
for f in "${files[@]}"; do cp "$work/$data/$f" "$dest/$f"; done
echo "fetch_real_frames: ${files[*]} -> $dest (Middlebury 2006 Aloe, from opencv-doc $(dpkg-deb -f "$deb" Version 2>/dev/null || echo '?'))"
