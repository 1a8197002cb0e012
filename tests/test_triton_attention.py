"""Fused Triton attention (``avattn.kernels.cmra_op``) on CPU under the Triton interpreter.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.

The interpreter needs ``TRITON_INTERPRET=1`` when Triton itself is imported (its standard
library is made of ``@triton.jit`` functions), when the kernels are defined, and while they
launch. So this module, at collection time (before any test of the session runs), sets the
variable, imports Triton and the kernels and runs one tiny launch (Triton imports a few
modules lazily on the first launch), then restores the variable; an autouse fixture sets it
again around each test here, so other test modules see the environment they expect.
Where this process cannot have interpreted kernels (a CUDA machine, whose GPU tests need the
compiled kernels, or Triton/the kernels already imported without the variable), the whole
module runs in a subprocess with the variable set (``test_interpreter_suite_in_subprocess``):
the checks always execute when Triton is installed, they never silently skip.

Error rule (flash-attention style): |triton - ref64| <= 2 * |torch_same_dtype - ref64| + atol,
taken as maxima over each tensor, for the output and every gradient.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from attention_checks import NAN_AT, leaves, make_inputs, nan_inputs, nan_paddings, run_fwd_bwd

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed; the fused backend cannot exist", allow_module_level=True)

_PRIOR_INTERPRET = os.environ.get("TRITON_INTERPRET")


def _restore_env() -> None:
    if _PRIOR_INTERPRET is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _PRIOR_INTERPRET


def _triton_imported_for_interpreter() -> bool:
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(standard.sum, InterpretedFunction)


def _load_interpreted_op():
    """The ``cmra_op`` module with interpreted kernels, or None if this process cannot have it."""
    if torch.cuda.is_available() and _PRIOR_INTERPRET != "1":
        return None  # keep compiled kernels for tests/test_triton_attention_gpu.py in this process
    fwd = sys.modules.get("avattn.kernels.cmra_fwd")
    if fwd is not None and not fwd.INTERPRETED:
        return None
    if "triton" in sys.modules and not _triton_imported_for_interpreter():
        return None
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import avattn.kernels.cmra_op as op

        x = torch.zeros(1, 1, 1, 16)
        op.cmra_attention_triton(x, [x], [x], None, None)  # first launch: Triton's lazy imports
    finally:
        _restore_env()
    return op


OP = _load_interpreted_op()
IN_PROCESS = OP is not None
in_process = pytest.mark.skipif(
    not IN_PROCESS, reason="interpreted kernels unavailable in this process: run by test_interpreter_suite_in_subprocess"
)


@pytest.fixture(autouse=True)
def _interpret_env(monkeypatch):
    if IN_PROCESS:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    yield


from avattn.functional import cmra_attention  # noqa: E402
from avattn.functional.reference import reference_attention  # noqa: E402

ATOL = {torch.float32: 1e-5, torch.float16: 2e-3}


@pytest.mark.skipif(IN_PROCESS, reason="the interpreted kernels run in this process (tests below)")
def test_interpreter_suite_in_subprocess():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env=env, capture_output=True, text=True, timeout=900,
    )
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    counts = dict((word, int(n)) for n, word in re.findall(r"(\d+) (passed|skipped|failed|error)", proc.stdout))
    # only this test itself may skip there; everything else must have run and passed
    assert counts.get("passed", 0) >= 10 and counts.get("skipped", 0) <= 1, tail


# ----------------------------------------------------------------------------- helpers


_make_inputs, _leaves, _run = make_inputs, leaves, run_fwd_bwd


def _reference(q, ks, vs, masks):
    return reference_attention(q, ks, vs, masks)[0]


def _triton(q, ks, vs, masks):
    return OP.cmra_attention_triton(q, ks, vs, masks, None)


def _assert_rule(names, got, same, ref64, dtype):
    for name, g, s, r in zip(names, got, same, ref64):
        assert g.shape == r.shape, f"{name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
        assert torch.isfinite(g).all(), f"{name}: non-finite values (unwritten or NaN)"
        err = (g.double() - r).abs().max().item()
        ref_err = (s.double() - r).abs().max().item()
        bound = 2 * ref_err + ATOL[dtype]
        assert err <= bound, f"{name}: max |triton - ref64| = {err:.3e} > 2 * {ref_err:.3e} + {ATOL[dtype]:.0e}"


def _check_against_reference(q, ks, vs, masks, dtype, poison=True):
    """Forward and every gradient of the Triton op vs float64 and same-dtype references."""
    dout = torch.randn(q.shape, dtype=torch.float64)
    with _poisoned() if poison else nullcontext():
        got = _run(_triton, *_leaves(q, ks, vs, dtype), masks, dout)
    same = _run(_reference, *_leaves(q, ks, vs, dtype), masks, dout)
    ref64 = _run(_reference, *_leaves(q, ks, vs, torch.float64), masks, dout)
    n = len(ks)
    names = ["out", "dq"] + [f"dk[{i}]" for i in range(n)] + [f"dv[{i}]" for i in range(n)]
    _assert_rule(names, got, same, ref64, dtype)
    return got


class _poisoned:
    """Every buffer the kernels must write starts as NaN."""

    def __enter__(self):
        self.prior, OP.POISON_OUTPUTS = OP.POISON_OUTPUTS, True

    def __exit__(self, *exc):
        OP.POISON_OUTPUTS = self.prior


# ----------------------------------------------------------------------------- correctness

CASES = [
    # b, tq, source lengths, h, d, dtype, masks
    pytest.param(2, 1, [1, 37, 5], 2, 64, torch.float32, None, id="tq1-3src-d64-fp32"),
    pytest.param(3, 10, [10, 7], 2, 32, torch.float32, ["full_row", "full_row"], id="tq10-2src-fullmask-fp32"),
    pytest.param(3, 10, [10, 10, 3], 2, 32, torch.float16, ["random", None, "full_row"], id="tq10-3src-mask-fp16"),
    pytest.param(2, 37, [37, 1], 1, 32, torch.float16, None, id="tq37-long-path-fp16"),
    pytest.param(2, 5, [13, 6], 3, 48, torch.float32, ["random", "random"], id="d48-pad-fp32"),
]


@in_process
@pytest.mark.parametrize("b, tq, lengths, h, d, dtype, masks", CASES)
def test_matches_float64_reference(b, tq, lengths, h, d, dtype, masks):
    q, ks, vs, m = _make_inputs(b, tq, lengths, h, d, dtype, masks)
    got = _check_against_reference(q, ks, vs, m, dtype)
    if masks is not None and all(kind == "full_row" for kind in masks):
        # batch row 1 has every key padded: zero output and zero gradients, exactly
        out, dq = got[0], got[1]
        assert (out[1] == 0).all() and (dq[1] == 0).all()
        assert all((g[1] == 0).all() for g in got[2:])


@in_process
@pytest.mark.parametrize(
    "cfg, b, h, lengths, tq, dtype",
    [
        # several problems per program, row and column blocks cutting across problems:
        # the generic backward (delta, dK/dV per source, dQ)
        pytest.param(dict(pack=3, block_m=16, block_n=16, bwd_block_m=16, bwd_block_n=16), 4, 2, [10, 7], 10,
                     torch.float32, id="pack3-split-fp32"),
        pytest.param(dict(pack=3, block_m=16, block_n=16, bwd_block_m=16, bwd_block_n=16), 4, 2, [10, 7], 10,
                     torch.float16, id="pack3-split-fp16"),
        # one problem per program, key loop with masked tails (FA2 path)
        pytest.param(dict(pack=1, block_m=16, block_n=16, bwd_block_m=16, bwd_block_n=16), 4, 2, [37, 5], 21,
                     torch.float32, id="pack1-loop"),
        # everything of 2 problems in one tile (single-program backward), last group half full
        pytest.param(dict(pack=2, block_m=32, block_n=32, bwd_block_m=32, bwd_block_n=32), 3, 1, [10, 7], 10,
                     torch.float32, id="pack2-packed-bwd"),
    ],
)
def test_every_forced_tiling_matches_the_reference(cfg, b, h, lengths, tq, dtype):
    q, ks, vs, m = _make_inputs(b, tq, lengths, h, 32, dtype, ["random", "full_row"])
    with OP.config_override(OP.Config(**cfg)):
        _check_against_reference(q, ks, vs, m, dtype)


NAN_CONFIGS = {
    # the heuristic tiles pack 3 problems: fp16 runs the one-program backward, fp32 the split one
    "packed-bwd-fp16": (None, torch.float16),
    "split-bwd-fp32": (None, torch.float32),
    # row and column blocks of 16 cutting across 3 packed problems; one problem per program
    "pack3-blocks16-fp16": (dict(pack=3, block_m=16, block_n=16, bwd_block_m=16, bwd_block_n=16), torch.float16),
    "pack1-fp32": (dict(pack=1, block_m=16, block_n=16, bwd_block_m=16, bwd_block_n=16), torch.float32),
}


@in_process
@pytest.mark.parametrize("where", ["query", "key", "value", "second_source_value", "dout"])
@pytest.mark.parametrize("config", list(NAN_CONFIGS))
def test_nan_stays_in_its_batch_row_and_follows_the_reference(config, where):
    # A NaN in batch row 1 (problem b * H + h = 3, packed with problems of batch rows 0 and 2).
    # Every other batch row's output and gradients are finite and bitwise those of a run without
    # the NaN; the NaN positions of the output and of every gradient are the float64 reference's.
    cfg, dtype = NAN_CONFIGS[config]
    b, tq, lengths, h, d = 4, 10, [10, 7], 2, 32
    q, ks, vs, _ = _make_inputs(b, tq, lengths, h, d, dtype)
    dout = torch.randn(q.shape, dtype=dtype)
    pack = cfg["pack"] if cfg else OP.choose_config(tq, lengths, d, dtype).pack
    assert (pack > 1) == (config != "pack1-fp32")
    others = torch.arange(b) != NAN_AT[0]
    names = ["out", "dq", "dk[0]", "dk[1]", "dv[0]", "dv[1]"]
    for padding in nan_paddings(where):
        nq, nks, nvs, ndout, masks = nan_inputs(q, ks, vs, dout, where, padding)
        with OP.config_override(OP.Config(**cfg)) if cfg else nullcontext():
            got = _run(_triton, *_leaves(nq, nks, nvs, dtype), masks, ndout)
            clean = _run(_triton, *_leaves(q, ks, vs, dtype), masks, dout)
        ref = _run(_reference, *_leaves(nq, nks, nvs, torch.float64), masks, ndout)
        assert got[0].isnan().any() == (where != "dout"), padding
        for name, g, c, r in zip(names, got, clean, ref):
            what = f"{name} with a NaN in {where}, padding {padding}"
            assert torch.isfinite(g[others]).all() and torch.equal(g[others], c[others]), what
            assert torch.equal(g.isnan(), r.isnan()), what


@in_process
def test_tiles_follow_the_compute_capability(monkeypatch):
    assert OP.device_arch(torch.device("cpu")) == 90  # the interpreter takes sm_90's tiles
    archs, choose = [], OP.choose_config
    with monkeypatch.context() as m:
        m.setattr(OP, "device_arch", lambda device: 80)
        m.setattr(OP, "choose_config", lambda *args: archs.append(args[-1]) or choose(*args))
        q, ks, vs, _ = _make_inputs(2, 10, [10], 1, 16, torch.float32)
        _run(_triton, *_leaves(q, ks, vs, torch.float32), None, torch.randn(q.shape))
    # why_not checks the grids of every known architecture's tiles; then the forward and the backward
    # launcher ask for the tensors' architecture
    assert archs == [*OP.ARCHS, 80, 80]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert OP.device_arch(torch.device("cuda", 0)) == 80
    # long fp16 memory at head dim 64: sm_90's blocks spill on sm_80 (compile check), so sm_80 gets smaller ones
    sm90, sm80 = (OP.choose_config(300, [257, 1000], 64, torch.float16, arch) for arch in (90, 80))
    assert (sm90.block_m, sm90.bwd_block_m) == (128, 64) and (sm80.block_m, sm80.bwd_block_m) == (64, 32)
    assert OP.choose_config(10, [10, 10], 128, torch.float16, 80).fwd_warps == 4
    assert OP.choose_config(10, [10, 10], 128, torch.float16, 90).fwd_warps is None


@in_process
def test_more_sources_than_one_launch():
    # 6 sources > MAX_SOURCES (4): forward merges two launches through the LSE, dQ sums partials.
    q, ks, vs, m = _make_inputs(2, 3, [2, 5, 1, 3, 4, 2], 2, 16, torch.float32, [None, "random", None, None, "full_row", "full_row"])
    m[1][1] = True  # with the full rows of sources 4, 5: row 1 of group 2 empty, group 1 not
    _check_against_reference(q, ks, vs, m, torch.float32)
    m = [torch.ones(2, t, dtype=torch.bool) for t in (2, 5, 1, 3, 4, 2)]
    got = _check_against_reference(q, ks, vs, m, torch.float32)  # everything padded: all zeros
    assert all((g == 0).all() for g in got)


@in_process
def test_more_sources_fp16_sums_partial_dq_in_fp32(monkeypatch):
    # 6 fp16 sources: two dQ launches whose partials must be fp32 buffers, summed before one rounding.
    q, ks, vs, m = _make_inputs(3, 10, [10, 7, 10, 3, 10, 9], 2, 32, torch.float16, ["random", None, None, "random", None, None])
    made = []
    real_buffer = OP._buffer
    monkeypatch.setattr(OP, "_buffer", lambda shape, dtype, device: made.append((tuple(shape), dtype)) or real_buffer(shape, dtype, device))
    _check_against_reference(q, ks, vs, m, torch.float16)
    partials = [dt for shape, dt in made if shape == tuple(q.shape)][-2:]  # the last two q-shaped buffers: dQ partials
    assert partials == [torch.float32, torch.float32], made


@in_process
def test_launches_run_on_the_tensors_device(monkeypatch):
    entered = []

    class Guard:
        def __init__(self, device):
            entered.append(device)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    # CUDA tensors get torch.cuda.device(their device) (a tensor on cuda:1 launches on cuda:1) ...
    monkeypatch.setattr(torch.cuda, "device", Guard)
    with OP._device_guard(torch.device("cuda", 1)):
        pass
    assert entered == [torch.device("cuda", 1)]
    # ... and both ops launch inside that guard
    seen = []
    real_guard = OP._device_guard
    monkeypatch.setattr(OP, "_device_guard", lambda device: seen.append(device) or real_guard(device))
    q, ks, vs, m = _make_inputs(2, 3, [4], 1, 16, torch.float32)
    q, ks, vs = _leaves(q, ks, vs, torch.float32)
    OP.cmra_attention_triton(q, ks, vs, m, None).sum().backward()
    assert seen == [q.device, q.device]


@in_process
def test_why_not_checks_every_launch_grid_axis():
    # zero-stride views: huge lengths without memory
    def long(t, d=32):
        return torch.zeros(1, 1, 1, d).expand(1, t, 1, d)

    q = long(1)
    assert OP.why_not(q, [long(1000)], [long(1000)], None) is None
    cfg = OP.choose_config(1, [10**7], 32, torch.float32)
    too_many = 65535 * cfg.bwd_block_n + 1  # fits the forward (one row block) but not the dK/dV key axis
    assert OP._row_grid(1, 1, cfg)[1] <= 65535
    reason = OP.why_not(q, [long(10), long(too_many)], [long(10), long(too_many)], None)
    assert reason is not None and "dK/dV of source 1" in reason and "axis 1" in reason and str(too_many) in reason
    cfg = OP.choose_config(10**7, [1], 32, torch.float32)
    rows = 65535 * cfg.block_m + 1
    reason = OP.why_not(long(rows), [long(1)], [long(1)], None)
    assert reason is not None and "forward and dQ" in reason and "axis 1" in reason


@in_process
def test_strided_views_need_no_copy():
    b, t_q, t_a, h, d = 2, 4, 6, 2, 32
    x = torch.randn(b, t_q, h * d, dtype=torch.float32)
    kv = torch.randn(b, t_a, 2, h, d, dtype=torch.float32)  # a fused kv projection, unflattened
    hm = torch.randn(b, h, 5, d, dtype=torch.float32)  # head-major memory, viewed time-major
    wide_mask = torch.rand(b, 12) < 0.4
    q = x.view(b, t_q, h, d)
    ks = [kv[:, :, 0], hm.transpose(1, 2)]
    vs = [kv[:, :, 1], hm.transpose(1, 2)[:, :, :, :]]
    masks = [wide_mask[:, ::2], None]
    assert not ks[0].is_contiguous() and not ks[1].is_contiguous() and not masks[0].is_contiguous()

    # the op reads the views in place: gradients reach the base tensors
    xs, kvs, hms = (t.clone().requires_grad_(True) for t in (x, kv, hm))
    out = OP.cmra_attention_triton(xs.view(b, t_q, h, d), [kvs[:, :, 0], hms.transpose(1, 2)],
                                   [kvs[:, :, 1], hms.transpose(1, 2)], masks, None)
    out.sum().backward()
    assert xs.grad is not None and kvs.grad is not None and hms.grad is not None
    _check_against_reference(q, ks, vs, masks, torch.float32)


@in_process
def test_backward_is_deterministic():
    q, ks, vs, m = _make_inputs(3, 10, [10, 9], 2, 32, torch.float32, ["random", None])
    dout = torch.randn(q.shape, dtype=torch.float64)
    a = _run(_triton, *_leaves(q, ks, vs, torch.float32), m, dout)
    b = _run(_triton, *_leaves(q, ks, vs, torch.float32), m, dout)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@in_process
def test_the_kernel_applies_a_custom_scale():
    q, ks, vs, _ = _make_inputs(2, 3, [4], 1, 16, torch.float32)
    got = OP.cmra_attention_triton(q, ks, vs, None, 0.3)
    ref = reference_attention(q.double(), [ks[0].double()], [vs[0].double()], None, 0.3)[0]
    assert (got.double() - ref).abs().max().item() < 1e-5
    assert (got.double() - _reference(q.double(), [ks[0].double()], [vs[0].double()], None)).abs().max() > 1e-3


# ----------------------------------------------------------------------------- why_not, API, compile


@in_process
def test_why_not_reasons(monkeypatch):
    q, ks, vs, m = _make_inputs(2, 3, [4, 5], 2, 32, torch.float32, ["random", None])
    assert OP.why_not(q, ks, vs, m) is None
    assert "bfloat16" in OP.why_not(q.bfloat16(), [k.bfloat16() for k in ks], [v.bfloat16() for v in vs], m)
    assert "float64" in OP.why_not(q.double(), [k.double() for k in ks], [v.double() for v in vs], m)
    small = torch.randn(2, 3, 2, 8)
    assert "head dims 16..128" in OP.why_not(small, [small], [small], None)
    big = torch.randn(1, 1, 1, 256)
    assert "head dims 16..128" in OP.why_not(big, [big], [big], None)
    assert "query's dtype" in OP.why_not(q, [ks[0].half(), ks[1]], vs, None)
    assert "bool" in OP.why_not(q, ks, vs, [m[0].float(), None])
    monkeypatch.setattr(OP, "INTERPRETED", False)
    assert "TRITON_INTERPRET=1" in OP.why_not(q, ks, vs, m)


@in_process
def test_direct_call_refuses_what_why_not_refuses(monkeypatch):
    q, ks, vs, m = _make_inputs(2, 3, [4, 5], 2, 32, torch.float32, ["random", None])
    small = torch.randn(2, 3, 2, 8)
    cfg = OP.choose_config(1, [10**7], 32, torch.float32)
    keys_past_the_grid = torch.zeros(1, 1, 1, 32).expand(1, 65535 * cfg.bwd_block_n + 1, 1, 32)  # no memory
    refused = {
        "bfloat16 under the interpreter": (q.bfloat16(), [k.bfloat16() for k in ks], [v.bfloat16() for v in vs], m),
        "head dim 8": (small, [small], [small], None),
        "float64": (q.double(), [k.double() for k in ks], [v.double() for v in vs], m),
        "dK/dV grid": (torch.zeros(1, 1, 1, 32), [keys_past_the_grid], [keys_past_the_grid], None),
    }
    for what, args in refused.items():
        reason = OP.why_not(*args)
        assert reason is not None, what
        with pytest.raises(RuntimeError) as direct:
            OP.cmra_attention_triton(*args, None)
        assert str(direct.value) == reason, what
    # a malformed mask is refused by the argument checks first, as cmra_attention refuses it
    with pytest.raises(TypeError, match=r"key_padding_masks\[0\] must be a bool tensor"):
        OP.cmra_attention_triton(q, ks, vs, [m[0].float(), None], None)
    monkeypatch.setattr(OP, "INTERPRETED", False)  # as if the kernels were compiled for a GPU: CPU refused
    with pytest.raises(RuntimeError) as direct:
        OP.cmra_attention_triton(q, ks, vs, m, None)
    assert str(direct.value) == OP.why_not(q, ks, vs, m) and "CPU tensors" in str(direct.value)


@in_process
def test_direct_call_checks_its_arguments_before_any_work(monkeypatch):
    q, ks, vs, _ = _make_inputs(2, 3, [4], 2, 32, torch.float32)
    launched = []
    monkeypatch.setattr(OP, "cmra_fwd_impl", lambda *a: launched.append(a))
    with pytest.raises(ValueError, match=r"keys\[0\] must have shape"):
        OP.cmra_attention_triton(q, [ks[0][:1]], vs, None, None)
    with pytest.raises(ValueError, match="key_padding_masks must have one entry"):
        OP.cmra_attention_triton(q, ks, vs, [None, None], None)
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        OP.cmra_attention_triton(q, ks, vs, None, -1.0)
    with pytest.raises(TypeError, match="keys must be a list or tuple"):
        OP.cmra_attention_triton(q, ks[0], vs, None, None)
    assert launched == []


@in_process
def test_functional_backend_triton(monkeypatch):
    q, ks, vs, m = _make_inputs(3, 10, [10, 3], 2, 32, torch.float32, ["full_row", None])
    leaves = _leaves(q, ks, vs, torch.float32)
    out = cmra_attention(*leaves, key_padding_masks=m, backend="triton")
    ref = cmra_attention(*_leaves(q, ks, vs, torch.float32), key_padding_masks=m, backend="reference")
    assert (out - ref).abs().max().item() < 1e-5
    with pytest.raises(RuntimeError, match="bfloat16"):
        cmra_attention(q.bfloat16(), [k.bfloat16() for k in ks], [v.bfloat16() for v in vs], backend="triton")
    with pytest.raises(RuntimeError, match="dropout"):
        cmra_attention(q, ks, vs, backend="triton", dropout_p=0.1)


@in_process
def test_op_registration_opcheck():
    q, ks, vs, m = _make_inputs(2, 3, [3, 5], 2, 16, torch.float32, [None, "random"])
    q, ks, vs = _leaves(q, ks, vs, torch.float32)
    torch.library.opcheck(torch.ops.avattn.cmra_fwd.default, (q, ks, vs, m, 0.25))
    out, lse = torch.ops.avattn.cmra_fwd(q, ks, vs, m, 0.25)
    assert lse.dtype == torch.float32 and lse.shape == (2, 2, 3)
    detached = ([t.detach() for t in ks], [t.detach() for t in vs])
    torch.library.opcheck(torch.ops.avattn.cmra_bwd.default, (torch.randn_like(out), q.detach(), *detached, m, out.detach(), lse, 0.25))


@in_process
def test_torch_compile_fullgraph_forward_backward(monkeypatch):
    q, ks, vs, m = _make_inputs(2, 3, [3, 5], 2, 16, torch.float32, [None, "random"])

    def loss_direct(q, ks, vs, m):
        return OP.cmra_attention_triton(q, ks, vs, m, None).square().sum()

    def loss_api(q, ks, vs, m):
        return cmra_attention(q, ks, vs, key_padding_masks=m, backend="triton").square().sum()

    # backends.py loads the kernel module with importlib, which dynamo cannot trace: load it eagerly first
    eager_api = _run(lambda *a: loss_api(*a)[None], *_leaves(q, ks, vs, torch.float32), m, torch.ones(1))
    eager = _run(lambda *a: loss_direct(*a)[None], *_leaves(q, ks, vs, torch.float32), m, torch.ones(1))
    for fn in (loss_direct, loss_api):
        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        got = _run(lambda *a, c=compiled: c(*a)[None], *_leaves(q, ks, vs, torch.float32), m, torch.ones(1))
        for g, e in zip(got, eager if fn is loss_direct else eager_api):
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_kernels_package_does_not_import_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # any `import triton` now raises ImportError
        "import avattn, avattn.kernels\n"
        "try:\n    import avattn.kernels.cmra_op\nexcept ImportError:\n    print('refused')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "refused"


_FRESH_COMPILE = """
import os; os.environ["TRITON_INTERPRET"] = "1"
import torch
from avattn.functional import cmra_attention
q, k, v = (torch.randn(2, t, 2, 16, requires_grad=True) for t in (10, 7, 7))
f = torch.compile(lambda q, k, v: cmra_attention(q, [k, q], [v, q], backend="triton"), fullgraph=True, backend="aot_eager")
out = f(q, k, v)
out.square().sum().backward()
ref = cmra_attention(q.detach().double(), [k.detach().double(), q.detach().double()],
                     [v.detach().double(), q.detach().double()], backend="reference")
print("ERR", (out.double() - ref).abs().max().item(), "GRAD", bool(k.grad.abs().sum() > 0))
"""


def test_compile_fullgraph_on_first_call_in_fresh_process():
    """The backend's lazy kernel import must not break tracing when compile sees it first."""
    res = subprocess.run([sys.executable, "-c", _FRESH_COMPILE], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    err = float(re.search(r"ERR (\S+)", res.stdout).group(1))
    assert err < 1e-5 and "GRAD True" in res.stdout
