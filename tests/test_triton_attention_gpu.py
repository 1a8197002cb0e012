"""Fused Triton attention on a CUDA GPU: compiled kernels, real sizes, bfloat16 included.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.

Same checks as ``tests/test_triton_attention.py`` (which runs the interpreter on CPU): forward
and every gradient against ``reference_attention`` in float64, judged by the flash-attention
rule |triton - ref64| <= 2 * |torch_same_dtype - ref64| + atol (maxima over each tensor);
NaN-poisoned output buffers; masks with fully padded rows; strided views; more sources than
one launch; determinism; ``torch.compile(fullgraph=True)`` with Inductor; a NaN input that stays
in its batch row and follows the reference's NaN rule.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from attention_checks import NAN_AT, leaves, make_inputs, nan_inputs, nan_paddings, run_fwd_bwd

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


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "b, tq, lengths, h, d, masks",
    [
        pytest.param(512, 10, [10, 10], 4, 64, None, id="ave"),
        pytest.param(512, 10, [10, 10], 4, 64, ["random", "full_row"], id="ave-masked"),
        pytest.param(256, 10, [10, 10], 2, 128, ["random", "full_row"], id="ave-d128-masked"),
        pytest.param(256, 10, [10, 10, 10], 4, 64, ["random", None, None], id="ave-3src"),
        pytest.param(64, 1, [1, 37, 5], 2, 128, None, id="tq1-3src-d128"),
        pytest.param(16, 37, [37, 13, 1], 2, 32, ["full_row", "full_row", "full_row"], id="odd-fullmask"),
        pytest.param(8, 29, [300, 77], 3, 80, ["random", None], id="d80-pad"),
        pytest.param(2, 1024, [1024, 2048], 4, 64, None, id="long"),
        pytest.param(2, 10, [4096, 1000], 4, 64, ["random", None], id="short-q-long-k"),
    ],
)
def test_matches_float64_reference(b, tq, lengths, h, d, masks, dtype):
    q, ks, vs, m = _inputs(b, tq, lengths, h, d, dtype, masks)
    got = _check(q, ks, vs, m, dtype)
    if masks is not None and all(kind == "full_row" for kind in masks):
        assert all((g[1] == 0).all() for g in got)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_projection_views_and_many_sources(dtype):
    b, t, h, d = 64, 10, 4, 64
    x = torch.randn(b, t, h * d, dtype=dtype, device=DEV)
    kv = torch.randn(b, t, 2, h, d, dtype=dtype, device=DEV)  # fused kv projection output
    q = x.view(b, t, h, d)
    _check(q, [kv[:, :, 0]], [kv[:, :, 1]], None, dtype)
    q, ks, vs, m = _inputs(4, 7, [3, 9, 1, 17, 5, 2], 2, 64, dtype, ["random"] * 6)
    _check(q, ks, vs, m, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("where", ["query", "key", "value", "second_source_value", "dout"])
@pytest.mark.parametrize("shape", ["ave", "long"])
def test_nan_stays_in_its_batch_row_and_follows_the_reference(shape, where, dtype):
    # As the interpreter test of the same name: other batch rows bitwise equal to a run without the
    # NaN and finite; NaN positions those of the float64 reference.
    b, tq, lengths, h, d = (64, 10, [10, 10], 4, 64) if shape == "ave" else (4, 300, [257, 100], 2, 64)
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


def test_deterministic_backward():
    q, ks, vs, m = _inputs(256, 10, [10, 10], 4, 64, torch.bfloat16, ["random", None])
    dout = torch.randn(q.shape, dtype=torch.float64, device=DEV)
    a = _run(_triton, *_leaves(q, ks, vs, torch.bfloat16), m, dout)
    b = _run(_triton, *_leaves(q, ks, vs, torch.bfloat16), m, dout)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_functional_api_and_auto():
    q, ks, vs, m = _inputs(32, 10, [10, 10], 4, 64, torch.bfloat16, ["random", None])
    out = cmra_attention(q, ks, vs, key_padding_masks=m, backend="triton")
    ref = cmra_attention(q.double(), [k.double() for k in ks], [v.double() for v in vs], key_padding_masks=m, backend="reference")
    assert (out.double() - ref).abs().max().item() < 3e-2
    from avattn.functional import select_backend

    assert select_backend("auto", q, ks, vs, m, 0.0, False) == "triton"


def test_torch_compile_inductor_fullgraph():
    q, ks, vs, m = _inputs(64, 10, [10, 10], 4, 64, torch.float16, ["random", None])

    def loss(q, ks, vs, m):
        return OP.cmra_attention_triton(q, ks, vs, m, None).float().square().sum()

    eager = _run(lambda *a: loss(*a)[None], *_leaves(q, ks, vs, torch.float16), m, torch.ones(1, device=DEV))
    compiled = torch.compile(loss, fullgraph=True)
    got = _run(lambda *a: compiled(*a)[None], *_leaves(q, ks, vs, torch.float16), m, torch.ones(1, device=DEV))
    for g, e in zip(got, eager):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)


def test_new_batch_size_compiles_nothing_new():
    from avattn.kernels import cmra_op

    def variants():
        return sum(len(entry[0]) for name in ("cmra_fwd_kernel", "cmra_bwd_packed_kernel", "cmra_delta_kernel",
                                              "cmra_bwd_dkdv_kernel", "cmra_bwd_dq_kernel")
                   for entry in getattr(getattr(cmra_op, name), "device_caches", {}).values())

    for lengths in ([10, 10], [300, 77]):
        q, ks, vs, m = _inputs(32, lengths[0], lengths, 4, 64, torch.bfloat16, ["random", None])
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
