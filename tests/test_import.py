"""`import avattn` works without Triton; the triton backend then refuses with the reason."""

import subprocess
import sys

BLOCK_TRITON = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ImportError("No module named 'triton' (blocked by test)")
sys.meta_path.insert(0, Block())
import os; os.environ["TRITON_INTERPRET"] = "1"
import torch, avattn
assert "triton" not in sys.modules
q = torch.randn(1, 2, 1, 16)
from avattn.functional import cmra_attention
out = cmra_attention(q, [q], [q])  # auto: sdpa
try:
    cmra_attention(q, [q], [q], backend="triton")
except RuntimeError as e:
    print("REFUSED:", e)
"""


def test_import_without_triton():
    res = subprocess.run([sys.executable, "-c", BLOCK_TRITON], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "REFUSED: backend 'triton' is unavailable" in res.stdout
    assert "triton" in res.stdout.split("REFUSED:")[1]


def test_import_does_not_import_triton():
    res = subprocess.run(
        [sys.executable, "-c", "import sys, avattn; print('triton' in sys.modules)"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
