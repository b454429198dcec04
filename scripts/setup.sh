#!/usr/bin/env bash
# Set up camels on a fresh machine and run the demo: a virtualenv in .venv, the CPU build of PyTorch
# first (so pip does not fetch a multi-GB CUDA build), camels with its extras, then `camels demo`.
#   bash scripts/setup.sh            # install + demo
#   bash scripts/setup.sh --no-demo  # install only
#   TORCH_SPEC="torch==2.5.1" bash scripts/setup.sh   # another torch build (GPU machines)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-train,eval,dev,web,judge,humaneval}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
# An install from before the distribution was renamed (`camels` -> `camels-instruct`, the same code) is
# replaced, so that one distribution owns the `camels` package and command.
if .venv/bin/python -m pip show camels 2>/dev/null | grep -qx "Editable project location: $PWD"; then
  .venv/bin/python -m pip uninstall -q -y camels
fi
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
echo "camels installed in .venv ($(.venv/bin/camels --version))"

if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/camels demo --out demo_out
fi
