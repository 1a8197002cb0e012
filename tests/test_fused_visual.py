"""The fused visual path equals the plain layers it replaces: Linear + ReLU + BitDropout, then AGSCA.

Float64: outputs, attention weights and every gradient agree to rounding, with the same dropout mask.
Float32 and bf16 autocast: the fused path's error against float64 is judged against the plain
layers' own error in that dtype. Also: the CMRAN switch, torch.compile(fullgraph=True), bad inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)

import avattn
from avattn.layers.fused_visual import fused_projected_agsca
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

C_IN, C, A, K = 24, 16, 8, 12  # input channels, projected channels, audio channels, spatial hidden size


def _layers(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    proj = nn.Linear(C_IN, C, dtype=dtype)
    agsca = avattn.AGSCA(C, A, hidden_dim=K, dtype=dtype)
    return proj, agsca


def _plain(visual, audio, proj, agsca, p, training):
    x = avattn.bit_dropout(torch.relu(proj(visual)), p, training)
    out, w = agsca(x, audio, return_weights=True)
    return out, w.spatial, w.channel


def _fused(visual, audio, proj, agsca, p, training):
    return fused_projected_agsca(visual, audio, proj, agsca, dropout=p, training=training)


def _run(fn, visual, audio, proj, agsca, p, training, seed, cotangents=None):
    """Outputs and the gradients of a random linear function of all three outputs (params, visual, audio)."""
    torch.manual_seed(seed)
    outs = fn(visual, audio, proj, agsca, p, training)
    if cotangents is None:
        g = torch.Generator().manual_seed(seed + 1)
        cotangents = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in outs]
    loss = sum((o.float() * c.float()).sum() if o.dtype != torch.float64 else (o * c).sum()
               for o, c in zip(outs, cotangents, strict=True))
    leaves = [*proj.parameters(), *agsca.parameters(), *(t for t in (visual, audio) if t.requires_grad)]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [o.detach() for o in outs], grads, cotangents


SHAPES = [(2, 3, (7, 7)), (1, 1, (1,)), (3, 1, (2, 3)), (1, 5, (5,))]


@pytest.mark.parametrize("b,t,cells", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("p,training", [(0.2, True), (0.5, True), (0.2, False), (0.0, True)])
def test_float64_outputs_and_gradients_equal_the_plain_layers(b, t, cells, p, training):
    proj, agsca = _layers()
    visual = torch.randn(b, t, *cells, C_IN, dtype=torch.float64, requires_grad=True)
    audio = torch.randn(b, t, A, dtype=torch.float64, requires_grad=True)
    ref, ref_grads, cot = _run(_plain, visual, audio, proj, agsca, p, training, seed=7)
    got, got_grads, _ = _run(_fused, visual, audio, proj, agsca, p, training, seed=7, cotangents=cot)
    for r, g in zip(ref, got, strict=True):
        assert g.shape == r.shape and g.dtype == r.dtype
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-13)
    for r, g in zip(ref_grads, got_grads, strict=True):
        if r is None:  # only the score bias of a single-cell map has no effect (softmax over one cell)
            assert g is None or not g.any()
            continue
        # the score bias shifts every cell's score alike: its true gradient is 0, both are rounding noise
        atol = 1e-12 * max(1.0, r.abs().max().item())
        torch.testing.assert_close(g, r, rtol=1e-10, atol=atol)


def _spy_inference_flag(monkeypatch) -> list[bool]:
    """Records the ``inference`` flag of every _GatedSpatialPool call (the in-place branch when True)."""
    from avattn.layers.fused_visual import _GatedSpatialPool as pool

    taken = []
    monkeypatch.setattr(pool, "apply", lambda *args, _apply=pool.apply: taken.append(args[-1]) or _apply(*args))
    return taken


def _frozen():
    """Grad mode on, but nothing requires a gradient: no backward can follow either."""
    return torch.enable_grad()


@pytest.mark.parametrize("b,t,cells", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode, _frozen])
def test_without_autograd_equals_the_plain_layers(b, t, cells, training, no_grad, monkeypatch):
    # without a backward the gating is computed in place: same values, and the inputs stay as they were
    proj, agsca = _layers()
    for param in [*proj.parameters(), *agsca.parameters()]:
        param.requires_grad_(False)
    visual = torch.randn(b, t, *cells, C_IN, dtype=torch.float64)
    audio = torch.randn(b, t, A, dtype=torch.float64)
    before = visual.clone(), audio.clone()
    taken = _spy_inference_flag(monkeypatch)
    results = []
    for fn in (_plain, _fused):
        torch.manual_seed(5)
        with no_grad():
            results.append(fn(visual, audio, proj, agsca, 0.3, training))
    assert taken == [True]  # the in-place branch ran
    for r, g in zip(*results, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-13)
    assert torch.equal(visual, before[0]) and torch.equal(audio, before[1])


def test_with_autograd_the_gating_keeps_its_input(monkeypatch):
    proj, agsca = _layers()
    taken = _spy_inference_flag(monkeypatch)
    visual = torch.randn(1, 2, 3, C_IN, dtype=torch.float64)
    audio = torch.randn(1, 2, A, dtype=torch.float64)
    _fused(visual, audio, proj, agsca, 0.0, False)
    assert taken == [False]


def test_dropout_mask_is_bit_dropouts_and_drops_at_rate_p():
    proj, agsca = _layers()
    visual = torch.randn(4, 10, 7, 7, C_IN, dtype=torch.float64)
    audio = torch.randn(4, 10, A, dtype=torch.float64)
    a = _run(_fused, visual, audio, proj, agsca, 0.2, True, seed=1)[0]
    b = _run(_fused, visual, audio, proj, agsca, 0.2, True, seed=1)[0]
    c = _run(_fused, visual, audio, proj, agsca, 0.2, True, seed=2)[0]
    e = _run(_fused, visual, audio, proj, agsca, 0.2, False, seed=2)[0]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # seeded like F.dropout
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], e[0])  # a fresh mask per call, none in eval


def _errors(fn, dtype, autocast):
    """max |output - float64| and max |grad - float64| (relative to the float64 grad's scale) of fn in dtype."""
    proj64, agsca64 = _layers(torch.float64, seed=3)
    proj, agsca = _layers(dtype, seed=3)
    proj.load_state_dict(proj64.state_dict())
    agsca.load_state_dict(agsca64.state_dict())
    visual64 = torch.randn(3, 10, 7, 7, C_IN, dtype=torch.float64).relu()
    audio64 = torch.randn(3, 10, A, dtype=torch.float64)
    ref, ref_grads, cot = _run(_plain, visual64, audio64, proj64, agsca64, 0.2, True, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got, grads, _ = _run(fn, visual64.to(dtype), audio64.to(dtype), proj, agsca, 0.2, True, seed=5,
                             cotangents=[c.to(dtype) for c in cot])
    out_err = max((g.double() - r).abs().max().item() for g, r in zip(got, ref, strict=True))
    grad_err = max(((g.double() - r).abs().max() / r.abs().max()).item()
                   for g, r in zip(grads[:-1], ref_grads[:-1], strict=True))  # all but the score bias
    return out_err, grad_err


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16-autocast"])
def test_low_precision_error_is_that_of_the_plain_layers(autocast):
    plain = _errors(_plain, torch.float32, autocast)
    fused = _errors(_fused, torch.float32, autocast)
    assert plain[0] > 0 and plain[1] > 0
    assert fused[0] <= 3 * plain[0] and fused[1] <= 3 * plain[1], (fused, plain)


def test_output_dtypes_under_bf16_autocast_match_the_plain_layers():
    proj, agsca = _layers(torch.float32)
    visual, audio = torch.rand(2, 3, 7, 7, C_IN), torch.rand(2, 3, A)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = _plain(visual, audio, proj, agsca, 0.2, True)
        fused = _fused(visual, audio, proj, agsca, 0.2, True)
    assert [t.dtype for t in fused] == [t.dtype for t in plain]


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_cmran_switch_gives_the_same_model_in_float64(setting):
    model = CMRAN(CMRANConfig(setting=setting), dtype=torch.float64)
    assert model.fused_visual  # the default
    visual = torch.randn(2, 3, 7, 7, 512, dtype=torch.float64).relu()
    audio = torch.randn(2, 3, 128, dtype=torch.float64)
    results = []
    for fused in (True, False):
        model.fused_visual = fused
        torch.manual_seed(11)
        out, weights = model(visual, audio, return_weights=True)
        loss = sum(o.sum() for o in out) + weights.spatial.square().sum() + weights.channel.sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append(([*out, weights.spatial, weights.channel], grads))
    (fo, fg), (po, pg) = results
    for f, p in zip(fo, po, strict=True):
        torch.testing.assert_close(f, p, rtol=1e-12, atol=1e-12)
    for (name, _), f, p in zip(model.named_parameters(), fg, pg, strict=True):
        atol = 1e-11 * max(1.0, p.abs().max().item())
        torch.testing.assert_close(f, p, rtol=1e-10, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiles_fullgraph_with_the_eager_result(backend, tmp_path, monkeypatch):
    # a fresh inductor cache: its on-disk cache is not keyed by ATEN_CPU_CAPABILITY, and a kernel cached
    # under another dispatch (AVX-512 vs AVX2) crashes when reused
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    torch._dynamo.reset()
    proj, agsca = _layers(torch.float32)
    visual = torch.rand(2, 3, 7, 7, C_IN)
    audio = torch.rand(2, 3, A)
    fn = torch.compile(_fused, fullgraph=True, backend=backend)
    for training in (True, False):
        eager, eager_grads, cot = _run(_fused, visual, audio, proj, agsca, 0.2, training, seed=4)
        comp, comp_grads, _ = _run(fn, visual, audio, proj, agsca, 0.2, training, seed=4, cotangents=cot)
        if training:  # compiled random draws need not match eager's: compare the dropout pattern's consequences
            kept = (comp[0] != 0).any()
            assert kept
            continue
        for e, c in zip(eager + list(eager_grads), comp + list(comp_grads), strict=True):
            torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the in-place inference branch, compiled
        torch.testing.assert_close(fn(visual, audio, proj, agsca, 0.2, False),
                                   _fused(visual, audio, proj, agsca, 0.2, False), rtol=1e-5, atol=1e-6)


def test_compiles_fullgraph_under_bf16_autocast():
    torch._dynamo.reset()
    proj, agsca = _layers(torch.float32)
    visual, audio = torch.rand(2, 3, 7, 7, C_IN), torch.rand(2, 3, A)
    fn = torch.compile(_fused, fullgraph=True, backend="aot_eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager = _fused(visual, audio, proj, agsca, 0.2, False)
        comp = fn(visual, audio, proj, agsca, 0.2, False)
    for e, c in zip(eager, comp, strict=True):
        assert c.dtype == e.dtype == torch.bfloat16
        torch.testing.assert_close(c, e)
    (grad,) = torch.autograd.grad(comp[0].float().sum(), [proj.weight])
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0


@pytest.mark.parametrize("visual,audio,dropout,match", [
    ((2, 3, 7, 7, C_IN + 1), (2, 3, A), 0.2, r"visual must have 24 channels last.*got \(2, 3, 7, 7, 25\)"),
    ((2, 3, 7, 7, C_IN), (2, 4, A), 0.2, r"audio must share \(B, T\) = \(2, 3\) with visual, got \(2, 4, 8\)"),
    ((2, 3, 7, 7, C_IN), (2, 3, A + 1), 0.2, r"audio must have shape \(B, T, 8\), got \(2, 3, 9\)"),
    ((2, 3, 7, 7, C_IN), (2, 3, A), 1.0, r"dropout must be a number in \[0, 1\), got 1.0"),
])
def test_bad_inputs_name_the_argument(visual, audio, dropout, match):
    proj, agsca = _layers(torch.float32)
    with pytest.raises(ValueError, match=match):
        fused_projected_agsca(torch.rand(visual), torch.rand(audio), proj, agsca, dropout=dropout, training=True)


def test_input_dtype_other_than_the_layers_fails_loudly():
    proj, agsca = _layers(torch.float64)
    with pytest.raises(TypeError, match=r"visual has dtype torch.float32 but the Linear parameters have dtype torch.float64"):
        fused_projected_agsca(torch.rand(1, 1, 4, C_IN), torch.rand(1, 1, A), proj, agsca, dropout=0.0, training=False)
    with pytest.raises(TypeError, match=r"audio has dtype torch.float32 but visual has dtype torch.float64"):
        fused_projected_agsca(torch.rand(1, 1, 4, C_IN, dtype=torch.float64), torch.rand(1, 1, A), proj, agsca,
                              dropout=0.0, training=False)


@pytest.mark.parametrize("fused", [True, False])
def test_cmran_names_a_visual_of_another_dtype(fused):
    model = CMRAN(CMRANConfig())
    model.fused_visual = fused
    visual, audio = torch.rand(1, 2, 7, 7, 512), torch.rand(1, 2, 128)
    with pytest.raises(TypeError, match=r"audio has dtype torch.float32 but visual has dtype torch.float64"):
        model(visual.double(), audio)
    with pytest.raises(TypeError, match=r"visual has dtype torch.float64 but the CMRAN parameters have dtype torch.float32"):
        model(visual.double(), audio.double())


def test_mismatched_projection_fails_loudly():
    proj = nn.Linear(C_IN, C + 1)
    agsca = avattn.AGSCA(C, A, hidden_dim=K)
    with pytest.raises(ValueError, match=r"proj.out_features \(17\) must equal AGSCA's visual_dim \(16\)"):
        fused_projected_agsca(torch.rand(1, 1, 4, C_IN), torch.rand(1, 1, A), proj, agsca, dropout=0.0, training=False)
