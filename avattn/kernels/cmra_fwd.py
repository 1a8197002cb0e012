"""Forward Triton kernel of ``cmra_attention``: one online softmax across all memory sources.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim;
a *problem* is one (b, h) pair, numbered ``p = b * H + h``.

Each source is read in place through its own base pointer and (b, t, h, d) strides, so
``x.view(B, T, H, Dh)`` of a Linear output or a slice of a fused kv projection needs no copy
and the memory is never concatenated.

Tiling. A program owns ``PACK`` consecutive problems and one block of their query rows:
row r of the program's row space is query step ``r % Tq`` of problem ``r // Tq``; column c
of source i's column space is key step ``c % Tk_i`` of problem ``c // Tk_i``. A score is
kept only where row and column belong to the same problem, the key step exists and is not
padded. ``PACK > 1`` packs several short problems into one tile (block-diagonal scores, the
whole memory of the packed problems in one column block: the AVE shape); ``PACK == 1`` is
the FlashAttention-2 loop over key blocks for long memory. It is one code path: the column
loop of a row block only visits the columns of the problems its rows belong to.

Missing scores (other problems, columns past the end) are -inf; a padded key adds -inf to its
score, so a NaN score (NaN query or key) stays NaN as in ``nn.MultiheadAttention``. The online
softmax uses a safe running max, so a row with every key padded and finite inputs ends with
``l == 0`` and writes zeros, and its log-sum-exp is stored as +inf so that the backward
recomputes p = exp2(s - lse) = 0 for it (zero gradients); a NaN score leaves ``l`` (and the row,
and its log-sum-exp) NaN. No NaN or inf of one packed problem reaches another (``_add_packed_pv``).
The log-sum-exp is stored in base 2 of the scaled scores, ``lse2 = log2(sum 2**(s*scale*log2 e))``,
as an fp32 (B, H, Tq) tensor.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

# The kernels below are InterpretedFunction objects iff this was true when this module was imported.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Sources handled by one launch. ``cmra_op`` runs more sources in groups of this size and merges them.
MAX_SOURCES = 4

# Integer arguments that change with the batch size or the sequence lengths. Triton would
# otherwise specialise each on "divisible by 16" / "equal to 1" and compile new kernels when the
# batch size changes mid-training; they feed only index arithmetic, where the specialisation
# buys nothing. Strides and head counts stay specialised: they are fixed for a model, and the
# divisibility of strides is what lets the loads vectorise.
VARYING = ["T0", "T1", "T2", "T3", "Tq", "Tk", "n_prob", "n_rows"]  # names absent from a kernel are ignored


@triton.jit
def pad_bias(pad):
    """Added to the scores of a column: -inf where the key is padded, else 0.

    Added, not selected: a NaN score (NaN query or key, padded or not) stays NaN, as in
    ``nn.MultiheadAttention``, whose mask is added to the scores.
    """
    return tl.where(pad != 0, float("-inf"), 0.0)


@triton.jit
def finite_or_zero(x):
    """x with every NaN and +-inf replaced by 0: a tile of packed problems that is contracted over
    rows or columns of several problems, where another problem's NaN would meet a zero weight."""
    return tl.where(tl.abs(x) < float("inf"), x, 0.0)


@triton.jit
def _add_packed_pv(acc, p, v, row_p, col_p, p_lo, p_hi, PREC: tl.constexpr):
    """acc + p @ v for a tile of packed problems, each row getting only its own problem's values.

    p is zero between problems, but 0 * NaN = NaN: a NaN (or inf) value of one video would reach
    every row of the tile. When the tile holds one (rare), each problem is multiplied with its own
    values only, one dot per problem, which gives its rows exactly what the shared dot gives.
    """
    if tl.min((tl.abs(v) < float("inf")).to(tl.int32)) == 1:
        acc = tl.dot(p, v, acc, input_precision=PREC)
    else:  # acc enters each dot as its accumulator, as in the single dot: the same rounding, bit for bit
        for j in range(p_lo, p_hi):
            v_j = tl.where((col_p == j)[:, None], v, 0.0)
            acc = tl.where((row_p == j)[:, None], tl.dot(p, v_j, acc, input_precision=PREC), acc)
    return acc


@triton.jit
def _attend_source(
    acc, m_i, l_i, q, row_p,
    K, V, M, Tk,
    skb, skt, skh, skd, svb, svt, svh, svd, smb, smt,
    p0, n_prob, H, qk_scale, p_lo, p_hi,
    HAS_MASK: tl.constexpr, PACK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """Fold one memory source into the running (acc, max, sum) of a block of query rows."""
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    c_lo = p_lo * Tk
    c_hi = p_hi * Tk  # only the columns of the problems these rows belong to
    for start in range(c_lo, c_hi, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        pc = cols // Tk  # local problem of each column
        tk = cols - pc * Tk
        gpc = p0 + pc
        bc = gpc // H
        hc = gpc - bc * H
        c_ok = cols < c_hi
        bc64 = bc.to(tl.int64)
        k_off = bc64 * skb + tk * skt + hc * skh
        kt = tl.load(K + k_off[None, :] + offs_d[:, None] * skd, mask=c_ok[None, :] & d_ok[:, None], other=0.0)
        s = tl.dot(q, kt, input_precision=PREC) * qk_scale
        if HAS_MASK:
            pad = tl.load(M + bc64 * smb + tk * smt, mask=c_ok, other=1)
            s = s + pad_bias(pad)[None, :]
        own = (row_p[:, None] == pc[None, :]) & c_ok[None, :]
        s = tl.where(own, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v_off = bc64 * svb + tk * svt + hc * svh
        v = tl.load(V + v_off[:, None] + offs_d[None, :] * svd, mask=c_ok[:, None] & d_ok[None, :], other=0.0)
        acc = acc * alpha[:, None]
        if PACK > 1:
            acc = _add_packed_pv(acc, p.to(v.dtype), v, row_p, pc, p_lo, p_hi, PREC)
        else:
            acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PREC)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit(do_not_specialize=VARYING)
def cmra_fwd_kernel(
    Q, sqb, sqt, sqh, sqd,
    O, sob, sot, soh, sod,
    LSE,
    K0, V0, M0, T0, sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
    K1, V1, M1, T1, sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
    K2, V2, M2, T2, sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
    K3, V3, M3, T3, sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
    H, Tq, n_prob, qk_scale,
    NUM_SRC: tl.constexpr,
    HAS_M0: tl.constexpr, HAS_M1: tl.constexpr, HAS_M2: tl.constexpr, HAS_M3: tl.constexpr,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """grid = (ceil(n_prob / PACK), ceil(PACK * Tq / BLOCK_M)). Writes O (B, Tq, H, Dh) and LSE (B, H, Tq)."""
    pid_g = tl.program_id(0)
    pid_m = tl.program_id(1)
    p0 = pid_g * PACK
    n_here = tl.minimum(n_prob - p0, PACK)  # problems owned by this program
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rp = rows // Tq
    tq = rows - rp * Tq
    gpr = p0 + rp
    br = gpr // H
    hr = gpr - br * H
    r_ok = rows < n_here * Tq
    br64 = br.to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    q_off = br64 * sqb + tq * sqt + hr * sqh
    q = tl.load(Q + q_off[:, None] + offs_d[None, :] * sqd, mask=r_ok[:, None] & d_ok[None, :], other=0.0)

    p_lo = (pid_m * BLOCK_M) // Tq
    p_hi = tl.minimum((pid_m * BLOCK_M + BLOCK_M - 1) // Tq + 1, n_here)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    acc, m_i, l_i = _attend_source(
        acc, m_i, l_i, q, rp, K0, V0, M0, T0, sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
        p0, n_prob, H, qk_scale, p_lo, p_hi, HAS_M0, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
    )
    if NUM_SRC > 1:
        acc, m_i, l_i = _attend_source(
            acc, m_i, l_i, q, rp, K1, V1, M1, T1, sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
            p0, n_prob, H, qk_scale, p_lo, p_hi, HAS_M1, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 2:
        acc, m_i, l_i = _attend_source(
            acc, m_i, l_i, q, rp, K2, V2, M2, T2, sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
            p0, n_prob, H, qk_scale, p_lo, p_hi, HAS_M2, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 3:
        acc, m_i, l_i = _attend_source(
            acc, m_i, l_i, q, rp, K3, V3, M3, T3, sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
            p0, n_prob, H, qk_scale, p_lo, p_hi, HAS_M3, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )

    empty = l_i == 0.0  # every key of the row padded (a NaN score leaves l NaN: the row stays NaN)
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    o_off = br64 * sob + tq * sot + hr * soh
    tl.store(O + o_off[:, None] + offs_d[None, :] * sod, out.to(O.dtype.element_ty), mask=r_ok[:, None] & d_ok[None, :])
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    tl.store(LSE + gpr.to(tl.int64) * Tq + tq, lse, mask=r_ok)
