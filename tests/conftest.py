import zlib

import pytest
import torch
from attention_checks import make_inputs


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    """A different seed per test, the same in every run and process (str hash() is salted per process)."""
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    yield


def rand_attention_inputs(b, tq, lengths, h, d, *, dtype=torch.float64, requires_grad=False, masks=None):
    """query (b, tq, h, d), keys/values per source (b, tk_i, h, d); masks: list of None/'random'/'full_row'."""
    q, ks, vs, out_masks = make_inputs(b, tq, lengths, h, d, dtype, masks)
    for t in (q, *ks, *vs):
        t.requires_grad_(requires_grad)
    return q, ks, vs, out_masks
