"""CPU benchmark of the CMRA attention sublayer at AVE shapes (pytest-benchmark).

Providers over the same work (projections + attention + output projection):
  mha_cat    nn.MultiheadAttention on torch.cat(memory)
  reference  avattn CrossModalRelationAttention, backend="reference"
  sdpa       avattn CrossModalRelationAttention, backend="sdpa"
Shapes: B in {32, 256}, T=10, memory = two sources of 10, dim 256, 4 heads; fp32 and bf16 autocast.
Run: make bench   (or: python -m pytest benchmarks/bench_attention_cpu.py --benchmark-only)
pytest-benchmark prints each group's times with ratios to the fastest in parentheses.
"""

import pytest
import torch
import torch.nn as nn

import avattn

DIM, HEADS, T = 256, 4, 10


def _make(provider):
    mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
    if provider == "mha_cat":
        return lambda q, other: mha(q, torch.cat([other, q], 1), torch.cat([other, q], 1), need_weights=False)[0]
    cmra = avattn.CrossModalRelationAttention.from_multihead_attention(mha, backend=provider)
    return lambda q, other: cmra(q, [other, q])


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("batch", [32, 256])
@pytest.mark.parametrize("provider", ["mha_cat", "reference", "sdpa"])
def test_cmra_sublayer(benchmark, provider, batch, pass_, amp):
    benchmark.group = f"B={batch} {pass_} {amp}"
    fn = _make(provider)
    q = torch.randn(batch, T, DIM, requires_grad=pass_ != "fwd")
    other = torch.randn(batch, T, DIM, requires_grad=pass_ != "fwd")

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            out = fn(q, other)
        if pass_ == "fwd":
            return out
        out.float().sum().backward()

    if pass_ == "fwd":
        with torch.no_grad():
            benchmark(step)
    else:
        benchmark(step)
