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


BLOCK_NUMPY = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError("No module named 'numpy' (blocked by test)", name="numpy")
sys.meta_path.insert(0, Block())
import torch, avattn
q = torch.randn(2, 3, 16)
out = avattn.CrossModalRelationAttention(16, 2)(q, [q])
v = avattn.AGSCA(16, 8)(torch.rand(2, 3, 4, 16), torch.rand(2, 3, 8))
print("numpy" in sys.modules, tuple(out.shape), tuple(v.shape))
"""


def test_import_and_layers_work_without_numpy():
    """numpy is no dependency of the library (the examples and tests extras bring it)."""
    res = subprocess.run([sys.executable, "-c", BLOCK_NUMPY], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "(2,", "3,", "16)", "(2,", "3,", "16)"]
