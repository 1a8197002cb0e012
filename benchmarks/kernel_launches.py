"""Every call of the fused attention that the GPU benchmarks and the CMRAN step make, replayable anywhere.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim, e model dim.

A *driver* makes one benchmark's calls of the fused kernels (forward and backward) on a device,
with the shapes, dtypes, strides and masks that benchmark uses, built by the benchmark's own code
where it has a function for it:

    bench-attention  benchmarks/bench_attention_gpu.py, group attention: every shape, bf16 / fp16 / fp32
    bench-sublayer   the same script, group sublayer: CrossModalRelationAttention(backend="triton")
    paper            benchmarks/gpu_paper_check.py: B = 4096 (and 4093), bf16
    cmran-fp32       benchmarks/bench_cmran.py, backend triton: a train step and an eval forward, fp32
    cmran-bf16       the same under bf16 autocast

``size="real"`` runs the benchmark's sizes; ``size="small"`` shrinks the batch (and long sequences
to 300 steps), which keeps the tiles (they depend on Tq <= 16, max Tk <= 32, Dh, dtype) and every
argument Triton specializes on (strides divisible by 16, ints equal to 1), so it launches the same
compiled kernel variants: ``tests/triton_compile_check.py --compare-sizes`` checks that on the
specialization keys. Users:

- ``tests/triton_compile_check.py`` runs the drivers on CPU tensors with every kernel replaced by a
  recorder and compiles each distinct launch for sm_90 / sm_80 (spills, shared memory);
- ``tests/test_triton_attention_gpu.py`` runs them small on CUDA under ``record_calls`` and checks
  every distinct call against the float64 reference, so scripts/gpu_check.sh's test step has run
  each kernel variant that the later steps time.

The compiled CMRAN modes (compile, cudagraphs) call the same op on tensors with the eager strides
(Inductor keeps a custom op's input strides); they are not driven here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = ("small", "real")
SMALL_BATCH = 4
SMALL_T = 300  # long sequences shrink to this: still >= 128 query rows, the long-memory tiles
CMRAN_BATCHES = {"small": (2,), "real": (32, 256)}


# ----------------------------------------------------------------------------- call specs


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # storage offset in elements: with a 16-byte-aligned storage, the pointer's alignment

    @staticmethod
    def of(t: torch.Tensor) -> TensorSpec:
        return TensorSpec(tuple(t.shape), tuple(t.stride()), t.storage_offset())

    def make(self, dtype: torch.dtype, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh random values (standard normal; bool: 40 % True) laid out exactly as the spec."""
        n = self.offset + 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride))
        if dtype == torch.bool:
            flat = torch.rand(n, generator=generator) < 0.4
        else:
            flat = torch.randn(n, generator=generator).to(dtype)
        return flat.to(device).as_strided(self.shape, self.stride, self.offset)


@dataclass(frozen=True)
class CallSpec:
    """What the launchers see of one ``cmra_fwd`` call: dtype, and each tensor's layout."""

    dtype: torch.dtype
    query: TensorSpec
    keys: tuple[TensorSpec, ...]
    values: tuple[TensorSpec, ...]
    masks: tuple[TensorSpec | None, ...]

    def make(self, device, generator: torch.Generator | None = None):
        """(query, keys, values, masks) with fresh random values in this layout."""
        q = self.query.make(self.dtype, device, generator)
        ks = [s.make(self.dtype, device, generator) for s in self.keys]
        vs = [s.make(self.dtype, device, generator) for s in self.values]
        masks = [None if s is None else s.make(torch.bool, device, generator) for s in self.masks]
        return q, ks, vs, (None if all(m is None for m in masks) else masks)

    def describe(self) -> str:
        b, tq, h, d = self.query.shape
        tks = [k.shape[1] for k in self.keys]
        masked = "".join("m" if m is not None else "-" for m in self.masks)
        return f"{str(self.dtype).replace('torch.', '')} B={b} Tq={tq} Tk={tks} H={h} Dh={d} masks={masked}"


@contextlib.contextmanager
def record_calls() -> Iterator[list[CallSpec]]:
    """Spies on ``cmra_op.cmra_fwd_impl`` (every forward of the op, however it is reached) and
    collects the distinct call specs, in order; the calls still run."""
    from avattn.kernels import cmra_op

    specs: list[CallSpec] = []
    real = cmra_op.cmra_fwd_impl

    def spy(q, keys, values, masks, scale):
        spec = CallSpec(q.dtype, TensorSpec.of(q), tuple(TensorSpec.of(k) for k in keys),
                        tuple(TensorSpec.of(v) for v in values),
                        tuple(None if m is None else TensorSpec.of(m) for m in masks))
        if spec not in specs:
            specs.append(spec)
        return real(q, keys, values, masks, scale)

    cmra_op.cmra_fwd_impl = spy
    try:
        yield specs
    finally:
        cmra_op.cmra_fwd_impl = real


# ----------------------------------------------------------------------------- drivers


def _resize(shape: dict, size: str) -> dict:
    if size == "real":
        return shape
    small_t = lambda t: t if t <= 32 else SMALL_T  # noqa: E731  (short memory keeps its lengths)
    return dict(shape, b=min(shape["b"], SMALL_BATCH), tq=small_t(shape["tq"]), tks=tuple(small_t(t) for t in shape["tks"]))


def _bench():
    from benchmarks import bench_attention_gpu

    return bench_attention_gpu


def bench_attention(device, size: str) -> None:
    """The avattn-triton provider of every attention case (forward + backward), every dtype."""
    bench = _bench()
    for dtype in bench.DTYPES.values():
        for shape in bench.shapes(quick=False):
            shape = _resize(shape, size)
            base, masks = bench.attention_base(shape, device)
            n = len(shape["tks"])
            leaves = [x.to(dtype).requires_grad_(True) for x in base]
            out = bench.triton_attention(leaves[0], leaves[1:1 + n], leaves[1 + n:], masks, shape["d"] ** -0.5)
            out.backward(torch.randn_like(out))


def bench_sublayer(device, size: str) -> None:
    """The avattn-triton sublayer (CrossModalRelationAttention, backend triton) of every sublayer case."""
    bench = _bench()
    for dtype_name, dtype in bench.DTYPES.items():
        ref_dtype = torch.float64 if dtype_name == "fp32" else torch.float32
        layer = bench.make_sublayers(dtype, ref_dtype, device)[0]["avattn-triton"]
        for shape in bench.shapes(quick=False):
            if not bench.sublayer_runs(shape):
                continue
            shape = _resize(shape, size)
            x, *mem = (torch.randn(shape["b"], t, bench.DIM, device=device, dtype=dtype).requires_grad_(True)
                       for t in (shape["tq"], *shape["tks"]))
            out = layer(x, mem)
            out.backward(torch.randn_like(out))


def paper(device, size: str) -> None:
    """gpu_paper_check.py's calls: B = 4096, then B - 3 (the recompile check); small: B = 6, 3."""
    from avattn.kernels.cmra_op import cmra_attention_triton
    from benchmarks import gpu_paper_check as pc

    b = pc.B if size == "real" else 6
    tensors = [torch.randn(b, pc.T, pc.H, pc.DH, device=device, dtype=torch.bfloat16) for _ in range(1 + 2 * pc.SOURCES)]
    for n in (b, b - 3):
        leaves = [t[:n].detach().requires_grad_(True) for t in tensors]
        out = cmra_attention_triton(leaves[0], leaves[1:1 + pc.SOURCES], leaves[1 + pc.SOURCES:], None, None)
        out.backward(torch.randn_like(out))


def _cmran(device, size: str, mode: str) -> None:
    from benchmarks import bench_cmran as bc

    device = torch.device(device)
    # bench_cmran runs every backend with dropout 0 when triton is among them (the kernels apply none)
    cfg = bc.CMRANConfig(setting="supervised", features="vgg19", backend="triton", dropout=0.0)
    for b in CMRAN_BATCHES[size]:
        case = bc.Case(mode, True, cfg, bc.synthetic_batch(b, bc.VISUAL_DIMS["vgg19"], device), device, "fused")
        case.train_step()
        case.eval_forward()


def cmran_fp32(device, size: str) -> None:
    _cmran(device, size, "eager")


def cmran_bf16(device, size: str) -> None:
    _cmran(device, size, "bf16")


DRIVERS: dict[str, Callable[[object, str], None]] = {
    "bench-attention": bench_attention,
    "bench-sublayer": bench_sublayer,
    "paper": paper,
    "cmran-fp32": cmran_fp32,
    "cmran-bf16": cmran_bf16,
}
