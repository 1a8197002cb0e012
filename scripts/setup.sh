#!/usr/bin/env bash
# Set up avattn from nothing: a virtual environment (.venv, unless one is active), PyTorch only
# if `import torch` fails there (a user's own CUDA build stays), then avattn with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-examples,video,dev}"
if [ -n "${VIRTUAL_ENV:-}" ]; then
  py="$VIRTUAL_ENV/bin/python"
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  py=.venv/bin/python
fi
"$py" -m pip install -q --upgrade pip >/dev/null
if ! "$py" -c "import torch" 2>/dev/null; then
  # The 2.13.0 pin resolves to the local CPU wheel on the project's machines; elsewhere pick
  # your build first (https://pytorch.org/get-started/locally/).
  "$py" -m pip install -q "torch==2.13.0"
fi
"$py" -m pip install -q -e ".[${extras}]"

"$py" -c "import sys, avattn, torch; print(f'avattn {avattn.__version__} with torch {torch.__version__} ready ({sys.executable})')"
