"""Fused Triton kernels (optional).

Nothing here is imported by ``import avattn``: the kernel modules import Triton, so they are
loaded lazily by ``avattn.functional.backends`` when ``backend="triton"`` is asked for.

Stack (Liger-Kernel style), one file per layer:
    ``cmra_fwd.py``  forward kernel (online softmax over several memory sources, saves LSE)
    ``cmra_bwd.py``  backward kernels (delta, dK/dV per source, dQ; no atomics)
    ``cmra_op.py``   launchers, ``torch.library`` ops ``avattn::cmra_fwd`` / ``avattn::cmra_bwd``
                     with fake impls and autograd, and ``cmra_attention_triton`` / ``why_not``
See ``docs/kernels.md`` for the design.
"""
