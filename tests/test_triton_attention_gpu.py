"""Fused Triton attention on a CUDA GPU: compiled kernels, real sizes, bfloat16 included.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.

Same checks as ``tests/test_triton_attention.py`` (which runs the interpreter on CPU): forward
and every gradient against ``reference_attention`` in float64, judged by the flash-attention
rule |triton - ref64| <= 2 * |torch_same_dtype - ref64| + atol (maxima over each tensor);
NaN-poisoned output buffers; masks with fully padded rows; strided views; more sources than
one launch; determinism; ``torch.compile(fullgraph=True)`` with Inductor; a NaN input that stays
in its batch row and follows the reference's NaN rule; and every distinct call that the GPU
benchmarks and the CMRAN step make (``benchmarks/kernel_launches.py``, run small), so that every
kernel variant they time has been checked first.

The shapes of every test are module-level tables: ``launch_drivers()`` replays them (forward and
backward, no checks) for ``tests/triton_compile_check.py``, which compiles each kernel variant these
tests launch for sm_90 and sm_80 on a machine without a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from attention_checks import NAN_AT, leaves, make_inputs, nan_inputs, nan_paddings, run_fwd_bwd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import kernel_launches  # noqa: E402  (imports only torch)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU interpreter checks are in test_triton_attention.py)"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed"),
]

if torch.cuda.is_available() and importlib.util.find_spec("triton") is not None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 is set: the GPU tests need compiled kernels", allow_module_level=True)
    import avattn.kernels.cmra_op as OP
    from avattn.kernels import cmra_fwd

    if cmra_fwd.INTERPRETED:
        pytest.skip("the kernels were imported under TRITON_INTERPRET=1 in this process", allow_module_level=True)
else:
    OP = None

from avattn.functional import cmra_attention  # noqa: E402
from avattn.functional.reference import reference_attention  # noqa: E402

DEV = "cuda"
ATOL = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}


_leaves, _run = leaves, run_fwd_bwd


def _inputs(b, tq, lengths, h, d, dtype, masks=None):
    return make_inputs(b, tq, lengths, h, d, dtype, masks, device=DEV)


def _reference(q, ks, vs, masks):
    return reference_attention(q, ks, vs, masks)[0]


def _triton(q, ks, vs, masks):
    return OP.cmra_attention_triton(q, ks, vs, masks, None)


def _check(q, ks, vs, masks, dtype):
    dout = torch.randn(q.shape, dtype=torch.float64, device=DEV)
    prior, OP.POISON_OUTPUTS = OP.POISON_OUTPUTS, True
    try:
        got = _run(_triton, *_leaves(q, ks, vs, dtype), masks, dout)
    finally:
        OP.POISON_OUTPUTS = prior
    same = _run(_reference, *_leaves(q, ks, vs, dtype), masks, dout)
    ref64 = _run(_reference, *_leaves(q, ks, vs, torch.float64), masks, dout)
    n = len(ks)
    names = ["out", "dq"] + [f"dk[{i}]" for i in range(n)] + [f"dv[{i}]" for i in range(n)]
    for name, g, s, r in zip(names, got, same, ref64):
        assert torch.isfinite(g).all(), f"{name}: non-finite values (unwritten or NaN)"
        err = (g.double() - r).abs().max().item()
        ref_err = (s.double() - r).abs().max().item()
        assert err <= 2 * ref_err + ATOL[dtype], f"{name}: {err:.3e} > 2 * {ref_err:.3e} + {ATOL[dtype]:.0e}"
    return got


DTYPES = [torch.bfloat16, torch.float16, torch.float32]
HALF_DTYPES = [torch.bfloat16, torch.float16]

# (b, tq, lengths, h, d, masks) of test_matches_float64_reference, by id
REFERENCE_CASES = {
    "ave": (512, 10, [10, 10], 4, 64, None),
    "ave-masked": (512, 10, [10, 10], 4, 64, ["random", "full_row"]),
    "ave-d128-masked": (256, 10, [10, 10], 2, 128, ["random", "full_row"]),
    "ave-3src": (256, 10, [10, 10, 10], 4, 64, ["random", None, None]),
    "tq1-3src-d128": (64, 1, [1, 37, 5], 2, 128, None),
    "odd-fullmask": (16, 37, [37, 13, 1], 2, 32, ["full_row", "full_row", "full_row"]),
    "d80-pad": (8, 29, [300, 77], 3, 80, ["random", None]),
    "long": (2, 1024, [1024, 2048], 4, 64, None),
    "short-q-long-k": (2, 10, [4096, 1000], 4, 64, ["random", None]),
}
VIEWS = (64, 10, 4, 64)  # b, t, h, d of the projection views
SIX_SOURCES = (4, 7, [3, 9, 1, 17, 5, 2], 2, 64, ["random"] * 6)
NAN_SHAPES = {"ave": (64, 10, [10, 10], 4, 64), "long": (4, 300, [257, 100], 2, 64)}
ONE_MASK = ["random", None]
DETERMINISM = (256, 10, [10, 10], 4, 64, torch.bfloat16)
FUNCTIONAL = (32, 10, [10, 10], 4, 64, torch.bfloat16)
COMPILED = (64, 10, [10, 10], 4, 64, torch.float16)
NEW_BATCH_LENGTHS = ([10, 10], [300, 77])  # at b = 32, h = 4, d = 64, bf16, then b = 31, 7, 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b, tq, lengths, h, d, masks", [pytest.param(*v, id=k) for k, v in REFERENCE_CASES.items()])
def test_matches_float64_reference(b, tq, lengths, h, d, masks, dtype):
    q, ks, vs, m = _inputs(b, tq, lengths, h, d, dtype, masks)
    got = _check(q, ks, vs, m, dtype)
    if masks is not None and all(kind == "full_row" for kind in masks):
        assert all((g[1] == 0).all() for g in got)


def _projection_views(dtype, device):
    """q, [k], [v] as a CMRA layer passes them: views of a Linear output and of a fused kv projection."""
    b, t, h, d = VIEWS
    x = torch.randn(b, t, h * d, dtype=dtype, device=device)
    kv = torch.randn(b, t, 2, h, d, dtype=dtype, device=device)  # fused kv projection output
    return x.view(b, t, h, d), [kv[:, :, 0]], [kv[:, :, 1]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_projection_views_and_many_sources(dtype):
    q, ks, vs = _projection_views(dtype, DEV)
    _check(q, ks, vs, None, dtype)
    q, ks, vs, m = _inputs(*SIX_SOURCES[:5], dtype, SIX_SOURCES[5])
    _check(q, ks, vs, m, dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("where", ["query", "key", "value", "second_source_value", "dout"])
@pytest.mark.parametrize("shape", list(NAN_SHAPES))
def test_nan_stays_in_its_batch_row_and_follows_the_reference(shape, where, dtype):
    # As the interpreter test of the same name: other batch rows bitwise equal to a run without the
    # NaN and finite; NaN positions those of the float64 reference.
    b, tq, lengths, h, d = NAN_SHAPES[shape]
    q, ks, vs, _ = _inputs(b, tq, lengths, h, d, dtype)
    dout = torch.randn(q.shape, dtype=dtype, device=DEV)
    pack = OP.choose_config(tq, lengths, d, dtype, OP.device_arch(q.device)).pack
    assert (pack > 1) == (shape == "ave")
    others = torch.arange(b, device=DEV) != NAN_AT[0]
    names = ["out", "dq", "dk[0]", "dk[1]", "dv[0]", "dv[1]"]
    for padding in nan_paddings(where):
        nq, nks, nvs, ndout, masks = nan_inputs(q, ks, vs, dout, where, padding)
        got = _run(_triton, *_leaves(nq, nks, nvs, dtype), masks, ndout)
        clean = _run(_triton, *_leaves(q, ks, vs, dtype), masks, dout)
        ref = _run(_reference, *_leaves(nq, nks, nvs, torch.float64), masks, ndout)
        assert got[0].isnan().any() == (where != "dout"), padding
        for name, g, c, r in zip(names, got, clean, ref):
            what = f"{name} with a NaN in {where}, padding {padding}"
            assert torch.isfinite(g[others]).all() and torch.equal(g[others], c[others]), what
            assert torch.equal(g.isnan(), r.isnan()), what


def test_the_backward_is_deterministic_run_to_run():
    *shape, dtype = DETERMINISM
    q, ks, vs, m = _inputs(*shape, dtype, ONE_MASK)
    dout = torch.randn(q.shape, dtype=torch.float64, device=DEV)
    a = _run(_triton, *_leaves(q, ks, vs, dtype), m, dout)
    b = _run(_triton, *_leaves(q, ks, vs, dtype), m, dout)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_functional_api_and_auto():
    *shape, dtype = FUNCTIONAL
    q, ks, vs, m = _inputs(*shape, dtype, ONE_MASK)
    out = cmra_attention(q, ks, vs, key_padding_masks=m, backend="triton")
    ref = cmra_attention(q.double(), [k.double() for k in ks], [v.double() for v in vs], key_padding_masks=m, backend="reference")
    assert (out.double() - ref).abs().max().item() < 3e-2
    from avattn.functional import select_backend

    assert select_backend("auto", q, ks, vs, m, 0.0, False) == "triton"


def test_torch_compile_inductor_fullgraph():
    *shape, dtype = COMPILED
    q, ks, vs, m = _inputs(*shape, dtype, ONE_MASK)

    def loss(q, ks, vs, m):
        return OP.cmra_attention_triton(q, ks, vs, m, None).float().square().sum()

    eager = _run(lambda *a: loss(*a)[None], *_leaves(q, ks, vs, dtype), m, torch.ones(1, device=DEV))
    compiled = torch.compile(loss, fullgraph=True)
    got = _run(lambda *a: compiled(*a)[None], *_leaves(q, ks, vs, dtype), m, torch.ones(1, device=DEV))
    for g, e in zip(got, eager):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)


def test_new_batch_size_compiles_nothing_new():
    from avattn.kernels import cmra_op

    def variants():
        return sum(len(entry[0]) for name in ("cmra_fwd_kernel", "cmra_bwd_packed_kernel", "cmra_delta_kernel",
                                              "cmra_bwd_dkdv_kernel", "cmra_bwd_dq_kernel")
                   for entry in getattr(getattr(cmra_op, name), "device_caches", {}).values())

    for lengths in NEW_BATCH_LENGTHS:
        q, ks, vs, m = _inputs(32, lengths[0], lengths, 4, 64, torch.bfloat16, ONE_MASK)
        dout = torch.randn(q.shape, dtype=torch.float64, device=DEV)
        _run(_triton, *_leaves(q, ks, vs, torch.bfloat16), m, dout)
        before = variants()
        for b in (31, 7, 1):  # B*H = 124, 28, 4: not divisible by 16, and smaller than one packed tile
            _run(_triton, *_leaves(q[:b], [k[:b] for k in ks], [v[:b] for v in vs], [m[0][:b], None],
                                   torch.bfloat16), [m[0][:b], None], dout[:b])
        assert variants() == before > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_the_second_gpu():
    q, ks, vs, m = make_inputs(64, 10, [10, 10], 4, 64, torch.float16, ["random", None], device="cuda:1")
    with torch.cuda.device(0):  # the current device is another GPU: the launch must follow the tensors
        got = _run(_triton, *_leaves(q, ks, vs, torch.float16), m, torch.ones(q.shape, device="cuda:1"))
    ref = _run(_reference, *_leaves(q, ks, vs, torch.float64), m, torch.ones(q.shape, device="cuda:1", dtype=torch.float64))
    for g, r in zip(got, ref):
        assert g.device == torch.device("cuda:1") and (g.double() - r).abs().max().item() < 2e-2


@pytest.mark.parametrize("driver", list(kernel_launches.DRIVERS))
def test_every_call_of_the_benchmarks_matches_the_reference(driver):
    # each distinct call (dtype, shapes, strides, masks) a benchmark or the CMRAN step makes, run
    # small (the same kernel variants as its real sizes), on fresh random inputs laid out the same
    with kernel_launches.record_calls() as specs:
        kernel_launches.DRIVERS[driver](DEV, "small")
    assert specs, f"{driver} made no call of the fused kernels"
    for spec in specs:
        q, ks, vs, masks = spec.make(DEV)
        _check(q, ks, vs, masks, spec.dtype)


# ----------------------------------------------------------------------------- for the compile check


def _fwd_bwd(q, ks, vs, masks, dtype, *, functional=False) -> None:
    from avattn.kernels.cmra_op import cmra_attention_triton

    q, ks, vs = _leaves(q, ks, vs, dtype)
    if functional:
        out = cmra_attention(q, ks, vs, key_padding_masks=masks, backend="triton")
    else:
        out = cmra_attention_triton(q, ks, vs, masks, None)
    out.backward(torch.randn_like(out))


def launch_drivers() -> dict[str, Callable[[object], None]]:
    """label -> fn(device): the calls of every test above (forward and backward, one of each kind of
    call, no checks), from the same tables, for ``tests/triton_compile_check.py``."""

    def inputs(device, b, tq, lengths, h, d, dtype, masks):
        return make_inputs(b, tq, lengths, h, d, dtype, masks, device=device)

    drivers = {}
    for dtype in DTYPES:
        name = str(dtype).replace("torch.", "")
        for case, (b, tq, lengths, h, d, masks) in REFERENCE_CASES.items():
            drivers[f"reference-{case}-{name}"] = lambda dev, a=(b, tq, lengths, h, d, dtype, masks): _fwd_bwd(
                *inputs(dev, *a), a[5])
        drivers[f"views-{name}"] = lambda dev, dt=dtype: _fwd_bwd(*_projection_views(dt, dev), None, dt)
        drivers[f"six-sources-{name}"] = lambda dev, dt=dtype: _fwd_bwd(
            *inputs(dev, *SIX_SOURCES[:5], dt, SIX_SOURCES[5]), dt)
    for dtype in HALF_DTYPES:
        name = str(dtype).replace("torch.", "")
        for shape, (b, tq, lengths, h, d) in NAN_SHAPES.items():
            def nan_case(dev, a=(b, tq, lengths, h, d, dtype)):
                q, ks, vs, _ = inputs(dev, *a, None)
                dout = torch.randn(q.shape, dtype=a[5], device=dev)
                q, ks, vs, _, masks = nan_inputs(q, ks, vs, dout, "key", "elsewhere")
                _fwd_bwd(q, ks, vs, masks, a[5])
            drivers[f"nan-{shape}-{name}"] = nan_case
    for label, (b, tq, lengths, h, d, dtype) in (("determinism", DETERMINISM), ("compiled", COMPILED)):
        drivers[label] = lambda dev, a=(b, tq, lengths, h, d, dtype): _fwd_bwd(*inputs(dev, *a, ONE_MASK), a[5])
    drivers["functional"] = lambda dev: _fwd_bwd(*inputs(dev, *FUNCTIONAL, ONE_MASK), FUNCTIONAL[5], functional=True)
    for lengths in NEW_BATCH_LENGTHS:
        drivers[f"new-batch-T{lengths[0]}"] = lambda dev, ls=lengths: _fwd_bwd(
            *inputs(dev, 32, ls[0], ls, 4, 64, torch.bfloat16, ONE_MASK), torch.bfloat16)
    return drivers
