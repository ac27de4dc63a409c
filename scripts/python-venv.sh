#!/usr/bin/env bash
# Creates (once) a Python virtual environment in the package root and installs packages into it from
# PyPI, then prints the path of its python. Only tests and checks of exported files use Python:
#   scripts/python-venv.sh .venv-onnx onnxruntime numpy      -> /path/.venv-onnx/bin/python
# Exits non-zero with the reason on stderr when Python, venv or the package index is unavailable,
# so a test can skip with that reason. A venv whose packages are all importable is reused as is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="${1:?usage: scripts/python-venv.sh DIR PACKAGE...}"; shift
venv="$root/$name"
python3="$(command -v python3 || true)"
[[ -n "$python3" ]] || { echo "python3 is not installed" >&2; exit 2; }
# Import names of the packages (pip names differ for a few).
modules=()
for spec in "$@"; do
  p="${spec%%[=<>]*}"  # the name without a version pin
  case "$p" in
    onnxruntime) modules+=(onnxruntime) ;;
    tensorboard) modules+=(tensorboard.backend.event_processing.event_file_loader) ;;
    *) modules+=("${p//-/_}") ;;
  esac
done
check() { "$venv/bin/python" -c "import $(IFS=,; echo "${modules[*]}")" >/dev/null 2>&1; }
if [[ -x "$venv/bin/python" ]] && check; then echo "$venv/bin/python"; exit 0; fi
# A venv left half-made (no pip) is made again.
if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then rm -rf "$venv"; fi
if [[ ! -x "$venv/bin/python" ]]; then
  "$python3" -m venv "$venv" >&2 || { echo "python3 -m venv failed (apt-get install python3-venv)" >&2; exit 2; }
fi
log="$(mktemp)"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1; then
  echo "pip install $* failed: $(tail -n 1 "$log")" >&2; rm -f "$log"; exit 3
fi
rm -f "$log"
check || { echo "installed $*, but python cannot import ${modules[*]}" >&2; exit 4; }
echo "$venv/bin/python"
