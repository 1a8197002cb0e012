import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    """A different, reproducible seed per test: fresh inputs without flaky reruns."""
    torch.manual_seed(hash(request.node.nodeid) % (2**31))
    yield


def rand_attention_inputs(b, tq, lengths, h, d, *, dtype=torch.float64, requires_grad=False, masks=None):
    """query (b, tq, h, d), keys/values per source (b, tk_i, h, d); masks: list of None/'random'/'full'."""
    q = torch.randn(b, tq, h, d, dtype=dtype, requires_grad=requires_grad)
    ks = [torch.randn(b, t, h, d, dtype=dtype, requires_grad=requires_grad) for t in lengths]
    vs = [torch.randn(b, t, h, d, dtype=dtype, requires_grad=requires_grad) for t in lengths]
    out_masks = None
    if masks is not None:
        out_masks = []
        for kind, t in zip(masks, lengths):
            if kind is None:
                out_masks.append(None)
            elif kind == "random":
                out_masks.append(torch.rand(b, t) < 0.4)
            else:
                raise ValueError(kind)
    return q, ks, vs, out_masks
