"""Input makers and forward+backward runners shared by the fused-kernel test modules.

Imports only torch: safe to import before Triton is set up for the interpreter.
Axis legend: b batch, q query steps, k_i steps of source i, h heads, d head dim.
"""

import torch


def make_inputs(b, tq, lengths, h, d, dtype, masks=None, device="cpu"):
    """query (b, tq, h, d) and per-source keys/values; masks: None or per source None / "random" / "full_row"."""
    q = torch.randn(b, tq, h, d, dtype=dtype, device=device)
    ks = [torch.randn(b, t, h, d, dtype=dtype, device=device) for t in lengths]
    vs = [torch.randn(b, t, h, d, dtype=dtype, device=device) for t in lengths]
    out_masks = None
    if masks is not None:
        out_masks = []
        for kind, t in zip(masks, lengths):
            if kind is None:
                out_masks.append(None)
                continue
            m = torch.rand(b, t, device=device) < 0.4
            if kind == "full_row":  # batch row 1 has this source fully padded
                m[1] = True
            out_masks.append(m)
    return q, ks, vs, out_masks


def leaves(q, ks, vs, dtype):
    """Fresh leaf copies in ``dtype`` that record gradients."""
    cast = lambda t: t.detach().to(dtype).requires_grad_(True)  # noqa: E731
    return cast(q), [cast(k) for k in ks], [cast(v) for v in vs]


def run_fwd_bwd(fn, q, ks, vs, masks, dout):
    """[output, dq, dk_0.., dv_0..] of ``fn(q, ks, vs, masks)`` backpropagated with ``dout``."""
    out = fn(q, ks, vs, masks)
    out.backward(dout.to(out.dtype))
    return [out.detach()] + [t.grad for t in (q, *ks, *vs)]


NAN_AT = (1, 2, 1, 3)  # batch row 1, step 2, head 1, channel 3


def nan_paddings(where):
    """Paddings worth trying for a NaN in ``where``: none at its position, at its position, its whole batch row."""
    return ("elsewhere", "whole_row") if where in ("query", "dout") else ("elsewhere", "nan_position", "whole_row")


def nan_inputs(q, ks, vs, dout, where, padding):
    """Copies of (q, ks, vs, dout) with one NaN at ``NAN_AT`` of ``where`` ("query", "key", "value",
    "second_source_value" or "dout"), and bool masks: one padded key of batch row 0 (elsewhere),
    plus the NaN's own key ("nan_position") or every key of batch row 1 ("whole_row")."""
    q, ks, vs, dout = q.clone(), [k.clone() for k in ks], [v.clone() for v in vs], dout.clone()
    target = {"query": q, "key": ks[0], "value": vs[0], "second_source_value": vs[1], "dout": dout}[where]
    target[NAN_AT] = float("nan")
    masks = [torch.zeros(k.shape[:2], dtype=torch.bool, device=q.device) for k in ks]
    masks[0][0, 0] = True
    if padding == "nan_position":
        masks[1 if where == "second_source_value" else 0][NAN_AT[:2]] = True
    elif padding == "whole_row":
        for m in masks:
            m[NAN_AT[0]] = True
    return q, ks, vs, dout, masks
