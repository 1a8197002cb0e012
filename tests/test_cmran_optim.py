"""The trainer's Adam implementations and gradient clipping (examples/ave/optim.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from examples.ave.checks import ConfigError
from examples.ave.config import TrainConfig
from examples.ave.optim import ADAM_IMPLS, clip_gradients, make_adam, set_adam_impl
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

D = torch.float64


def _batch(b=3):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(b, 10, 7, 7, 512, generator=g, dtype=D), torch.rand(b, 10, 128, generator=g, dtype=D),
            torch.randint(0, 29, (b, 10), generator=g), torch.randint(0, 28, (b,), generator=g))


def _train(impl: str, steps: int = 3, grad_clip: float = 0.1, state=None) -> tuple[CMRAN, torch.optim.Adam]:
    """``steps`` steps of train.py's loop (loss, backward, clip, read the norm, Adam) in float64."""
    torch.manual_seed(0)
    model = CMRAN(CMRANConfig(dropout_impl="torch"), dtype=D).train()
    opt = make_adam(model.parameters(), lr=5e-4, impl=impl)
    if state is not None:
        model.load_state_dict(state[0])
        opt.load_state_dict(copy.deepcopy(state[1]))  # loading keeps the dict's tensors: the step would change them
        set_adam_impl(opt, impl)
    visual, audio, segments, videos = _batch()
    for _ in range(steps):
        loss = model.loss(model(visual, audio), segments, videos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = clip_gradients(model.parameters(), grad_clip).item()
        assert norm > 0
        opt.step()
    return model, opt


def _max_rel_diff(a: CMRAN, b: CMRAN) -> float:
    """Over the parameters, max |a - b| / max |b|. The key half of each attention's kv_proj bias is left out:
    softmax ignores it, so its gradient is rounding noise (~1e-20) that Adam scales up to steps of ~lr, and
    any other rounding in an earlier step gives other noise."""
    worst = 0.0
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if name.endswith("kv_proj.bias"):
            p, q = p[p.shape[0] // 2:], q[q.shape[0] // 2:]  # (keys, values): the value half
        worst = max(worst, ((p - q).abs().max() / q.abs().max().clamp_min(1e-300)).item())
    return worst


@pytest.mark.parametrize("impl", ["fused", "foreach"])
@pytest.mark.parametrize("grad_clip", [0.1, 0.0])
def test_adam_impls_give_the_default_adams_parameters_in_float64(impl, grad_clip):
    ref, _ = _train("for", grad_clip=grad_clip)
    got, opt = _train(impl, grad_clip=grad_clip)
    start, _ = _train("for", steps=0)
    assert _max_rel_diff(ref, start) > 1e-6  # the steps moved the parameters
    assert _max_rel_diff(got, ref) < 1e-12
    assert opt.param_groups[0]["fused"] is (impl == "fused")


def test_switching_impl_on_resume_continues_the_same_update():
    model, opt = _train("for", steps=2)
    state = ({k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict())
    ref, _ = _train("for", steps=1, state=state)
    got, opt2 = _train("fused", steps=1, state=state)
    assert opt2.param_groups[0]["fused"] is True and not opt2.param_groups[0]["foreach"]
    assert _max_rel_diff(got, ref) < 1e-12


def test_clip_gradients_is_torchs_clipping_without_a_sync():
    a = [torch.randn(5, 3, dtype=D, requires_grad=True), torch.randn(7, dtype=D, requires_grad=True),
         torch.randn(2, dtype=D, requires_grad=True)]  # the last gets no gradient
    for p in a[:2]:
        p.grad = torch.randn_like(p) * 3
    b = [p.detach().clone().requires_grad_() for p in a]
    for p, q in zip(a, b):
        q.grad = None if p.grad is None else p.grad.clone()
    expected = torch.nn.utils.clip_grad_norm_(b, 0.5, foreach=False)
    norm = clip_gradients(a, 0.5)
    assert isinstance(norm, torch.Tensor) and norm.dim() == 0
    torch.testing.assert_close(norm, expected, rtol=1e-14, atol=0)
    for p, q in zip(a[:2], b[:2]):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-14, atol=0)
    for p in a[:2]:
        p.grad *= 10
    before = [p.grad.clone() for p in a[:2]]
    expected = torch.cat([g.flatten() for g in before]).norm()
    torch.testing.assert_close(clip_gradients(a, 0.0), expected, rtol=1e-14, atol=0)  # 0: the norm only
    assert all(torch.equal(p.grad, g) for p, g in zip(a[:2], before))


def test_bad_adam_impl_fails_loudly():
    with pytest.raises(ConfigError, match=r"adam_impl must be one of \('fused', 'foreach', 'for'\), got 'fast'"):
        TrainConfig(adam_impl="fast").resolve("supervised")
    with pytest.raises(ConfigError, match="adam_impl must be one of"):
        make_adam([torch.zeros(2, requires_grad=True)], lr=1e-3, impl="fast")
    assert TrainConfig().adam_impl == "fused" and set(ADAM_IMPLS) == {"fused", "foreach", "for"}
