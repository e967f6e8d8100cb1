#!/usr/bin/env bash
# The OSDP tests' control panel: LibOSDP's Python package (PyPI `libosdp`, a wheel) in a private
# venv, created on first use. Prints the venv's python. `tests/tests/osdp.rs` looks for it there.
set -euo pipefail
venv="${XDG_CACHE_HOME:-$HOME/.cache}/facegate/osdp-venv"
if ! "$venv/bin/python" -c "import osdp" >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet libosdp==3.2.9
fi
echo "$venv/bin/python"
