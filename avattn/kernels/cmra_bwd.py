"""Backward Triton kernels of ``cmra_attention``: delta, dK/dV per source, dQ. No atomics.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim;
a *problem* is one (b, h) pair, ``p = b * H + h``. Row/column spaces and ``PACK`` are as in
``cmra_fwd`` (rows: ``PACK * Tq`` query steps of the program's problems, columns of source i:
``PACK * Tk_i`` key steps).

With the forward's base-2 log-sum-exp ``lse2`` (fp32, (B, H, Tq); +inf for rows whose keys are
all padded) the probabilities are recomputed as ``P = exp2(S * scale * log2 e - lse2)``, and

    delta = rowsum(dO * O)            (cmra_delta_kernel)
    dV_i  = P_i^T dO                  (cmra_bwd_dkdv_kernel, one launch per source,
    dS_i  = P_i * (dO V_i^T - delta)   a program owns a block of keys and loops over the
    dK_i  = scale * dS_i^T Q           query rows of its problems)
    dQ    = scale * sum_i dS_i K_i    (cmra_bwd_dq_kernel, a program owns a block of query
                                       rows and loops over every source's keys)

Each output element is written by exactly one program, so results are deterministic.

Packed tiles (``PACK > 1``): dV, dK and dQ sum over the rows or keys of several problems, where
the weight between problems is 0 and 0 * NaN = NaN; the Q, K and dO tiles go through
``finite_or_zero`` and P, dS are zeroed between problems, so one problem's NaN never reaches
another's gradients, and dV is recomputed per problem when a row's dO is not finite
(``_dv_per_problem``), so that it still reaches its own.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .cmra_fwd import INTERPRETED, MAX_SOURCES, VARYING, finite_or_zero, pad_bias  # noqa: F401  (re-exported for cmra_op)


@triton.jit(do_not_specialize=VARYING)
def cmra_delta_kernel(
    O, sob, sot, soh, sod,
    DO, sdb, sdt, sdh, sdd,
    DELTA, H, Tq, n_rows,
    BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
):
    """delta[p, t] = sum_d dO * O, fp32 (B, H, Tq); grid = (ceil(B * H * Tq / BLOCK),)."""
    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # r = p * Tq + t
    r_ok = r < n_rows
    gp = r // Tq
    t = r - gp * Tq
    b = (gp // H).to(tl.int64)
    h = gp - (gp // H) * H
    offs_d = tl.arange(0, BLOCK_D)
    mask = r_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(O + (b * sob + t * sot + h * soh)[:, None] + offs_d[None, :] * sod, mask=mask, other=0.0)
    do = tl.load(DO + (b * sdb + t * sdt + h * sdh)[:, None] + offs_d[None, :] * sdd, mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + r.to(tl.int64), delta, mask=r_ok)


@triton.jit
def _dv_per_problem(dv, pt, DO, do_off, sdd, row_p, col_p, p_lo, p_hi, ACC: tl.constexpr,
                    BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr, PREC: tl.constexpr):
    """dV = pt @ dO of packed problems when a row of dO holds a NaN or inf (rare).

    The shared dot takes dO through finite_or_zero, which would hide that NaN from its own
    problem's dV too; here each problem's keys get pt @ dO over their own rows only, dO reloaded
    with the other problems' rows masked to 0: the same products as the shared dot. With ACC, dv
    (the running sum) enters each dot as its accumulator, as in the shared dot.
    """
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    for j in range(p_lo, p_hi):
        do_j = tl.load(DO + do_off[:, None] + offs_d[None, :] * sdd, mask=(row_p == j)[:, None] & d_ok[None, :],
                       other=0.0)
        if ACC:
            part = tl.dot(pt, do_j, dv, input_precision=PREC)
        else:
            part = tl.dot(pt, do_j, input_precision=PREC)
        dv = tl.where((col_p == j)[:, None], part, dv)
    return dv


@triton.jit
def all_finite(x):
    """True iff every element of x is finite (one reduction)."""
    return tl.min((tl.abs(x) < float("inf")).to(tl.int32)) == 1


@triton.jit(do_not_specialize=VARYING)
def cmra_bwd_dkdv_kernel(
    Q, sqb, sqt, sqh, sqd,
    DO, sdb, sdt, sdh, sdd,
    LSE, DELTA,
    K, skb, skt, skh, skd,
    V, svb, svt, svh, svd,
    M, smb, smt,
    DK, sdkb, sdkt, sdkh, sdkd,
    DV, sdvb, sdvt, sdvh, sdvd,
    H, Tq, Tk, n_prob, qk_scale, sm_scale,
    HAS_MASK: tl.constexpr, PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """dK, dV of one source; grid = (ceil(n_prob / PACK), ceil(PACK * Tk / BLOCK_N))."""
    pid_g = tl.program_id(0)
    pid_n = tl.program_id(1)
    p0 = pid_g * PACK
    n_here = tl.minimum(n_prob - p0, PACK)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM

    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    pc = cols // Tk
    tk = cols - pc * Tk
    gpc = p0 + pc
    bc = gpc // H
    hc = gpc - bc * H
    c_ok = cols < n_here * Tk
    bc64 = bc.to(tl.int64)
    if HAS_MASK:
        bias = pad_bias(tl.load(M + bc64 * smb + tk * smt, mask=c_ok, other=1))
    kv_mask = c_ok[:, None] & d_ok[None, :]
    k = tl.load(K + (bc64 * skb + tk * skt + hc * skh)[:, None] + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
    v = tl.load(V + (bc64 * svb + tk * svt + hc * svh)[:, None] + offs_d[None, :] * svd, mask=kv_mask, other=0.0)

    p_lo = (pid_n * BLOCK_N) // Tk
    p_hi = tl.minimum((pid_n * BLOCK_N + BLOCK_N - 1) // Tk + 1, n_here)
    r_lo = p_lo * Tq
    r_hi = p_hi * Tq
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    for start in range(r_lo, r_hi, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        rp = rows // Tq
        tq = rows - rp * Tq
        gpr = p0 + rp
        br = gpr // H
        hr = gpr - br * H
        r_ok = rows < r_hi
        br64 = br.to(tl.int64)
        qt = tl.load(
            Q + (br64 * sqb + tq * sqt + hr * sqh)[None, :] + offs_d[:, None] * sqd,
            mask=r_ok[None, :] & d_ok[:, None], other=0.0,
        )
        do_off = br64 * sdb + tq * sdt + hr * sdh
        do = tl.load(DO + do_off[:, None] + offs_d[None, :] * sdd, mask=r_ok[:, None] & d_ok[None, :], other=0.0)
        lse = tl.load(LSE + gpr.to(tl.int64) * Tq + tq, mask=r_ok, other=0.0)
        delta = tl.load(DELTA + gpr.to(tl.int64) * Tq + tq, mask=r_ok, other=0.0)
        if PACK > 1:  # dV and dK sum over the rows of several problems: see finite_or_zero
            qt = finite_or_zero(qt)
            do = finite_or_zero(do)
        st = tl.dot(k, qt, input_precision=PREC) * qk_scale  # (keys, rows)
        if HAS_MASK:
            st = st + bias[:, None]
        own = (pc[:, None] == rp[None, :]) & c_ok[:, None] & r_ok[None, :]
        st = tl.where(own, st, float("-inf"))
        pt = tl.math.exp2(st - lse[None, :])
        if PACK > 1:  # a NaN lse (a NaN row of another problem) gives exp2(-inf - NaN) = NaN
            pt = tl.where(own, pt, 0.0)
        if PACK > 1:
            if all_finite(delta):  # delta = rowsum(dO * O) is NaN or inf where a row of dO is
                dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=PREC)
            else:
                dv = _dv_per_problem(dv, pt.to(do.dtype), DO, do_off, sdd, rp, pc, p_lo, p_hi, True,
                                     BLOCK_D, HEAD_DIM, PREC)
        else:
            dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=PREC)
        dpt = tl.dot(v, tl.trans(do), input_precision=PREC)
        dst = pt * (dpt - delta[None, :])
        if PACK > 1:
            dst = tl.where(own, dst, 0.0)
        dk += tl.dot(dst.to(qt.dtype), tl.trans(qt), input_precision=PREC)
    dk = dk * sm_scale
    tl.store(
        DK + (bc64 * sdkb + tk * sdkt + hc * sdkh)[:, None] + offs_d[None, :] * sdkd,
        dk.to(DK.dtype.element_ty), mask=kv_mask,
    )
    tl.store(
        DV + (bc64 * sdvb + tk * sdvt + hc * sdvh)[:, None] + offs_d[None, :] * sdvd,
        dv.to(DV.dtype.element_ty), mask=kv_mask,
    )


@triton.jit
def _dq_source(
    dq, q, do, lse, delta, row_p,
    K, V, M, Tk,
    skb, skt, skh, skd, svb, svt, svh, svd, smb, smt,
    p0, H, qk_scale, p_lo, p_hi,
    HAS_MASK: tl.constexpr, PACK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """Add one source's contribution sum_k dS K (unscaled) to a block of dQ rows."""
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    c_lo = p_lo * Tk
    c_hi = p_hi * Tk
    for start in range(c_lo, c_hi, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        pc = cols // Tk
        tk = cols - pc * Tk
        gpc = p0 + pc
        bc = gpc // H
        hc = gpc - bc * H
        c_ok = cols < c_hi
        bc64 = bc.to(tl.int64)
        t_mask = c_ok[None, :] & d_ok[:, None]
        kt = tl.load(K + (bc64 * skb + tk * skt + hc * skh)[None, :] + offs_d[:, None] * skd, mask=t_mask, other=0.0)
        vt = tl.load(V + (bc64 * svb + tk * svt + hc * svh)[None, :] + offs_d[:, None] * svd, mask=t_mask, other=0.0)
        if PACK > 1:  # dQ sums over the keys of several problems: see finite_or_zero
            kt = finite_or_zero(kt)
        s = tl.dot(q, kt, input_precision=PREC) * qk_scale
        if HAS_MASK:
            s = s + pad_bias(tl.load(M + bc64 * smb + tk * smt, mask=c_ok, other=1))[None, :]
        own = (row_p[:, None] == pc[None, :]) & c_ok[None, :]
        s = tl.where(own, s, float("-inf"))
        p = tl.math.exp2(s - lse[:, None])
        dp = tl.dot(do, vt, input_precision=PREC)
        ds = p * (dp - delta[:, None])
        if PACK > 1:  # another problem's NaN (lse, delta, value) must not meet a zero weight
            ds = tl.where(own, ds, 0.0)
        dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=PREC)
    return dq


@triton.jit(do_not_specialize=VARYING)
def cmra_bwd_dq_kernel(
    Q, sqb, sqt, sqh, sqd,
    DO, sdb, sdt, sdh, sdd,
    DQ, sdqb, sdqt, sdqh, sdqd,
    LSE, DELTA,
    K0, V0, M0, T0, sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
    K1, V1, M1, T1, sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
    K2, V2, M2, T2, sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
    K3, V3, M3, T3, sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
    H, Tq, n_prob, qk_scale, sm_scale,
    NUM_SRC: tl.constexpr,
    HAS_M0: tl.constexpr, HAS_M1: tl.constexpr, HAS_M2: tl.constexpr, HAS_M3: tl.constexpr,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """dQ over all sources; grid = (ceil(n_prob / PACK), ceil(PACK * Tq / BLOCK_M))."""
    pid_g = tl.program_id(0)
    pid_m = tl.program_id(1)
    p0 = pid_g * PACK
    n_here = tl.minimum(n_prob - p0, PACK)
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
    rmask = r_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + (br64 * sqb + tq * sqt + hr * sqh)[:, None] + offs_d[None, :] * sqd, mask=rmask, other=0.0)
    do = tl.load(DO + (br64 * sdb + tq * sdt + hr * sdh)[:, None] + offs_d[None, :] * sdd, mask=rmask, other=0.0)
    lse = tl.load(LSE + gpr.to(tl.int64) * Tq + tq, mask=r_ok, other=0.0)
    delta = tl.load(DELTA + gpr.to(tl.int64) * Tq + tq, mask=r_ok, other=0.0)

    p_lo = (pid_m * BLOCK_M) // Tq
    p_hi = tl.minimum((pid_m * BLOCK_M + BLOCK_M - 1) // Tq + 1, n_here)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq = _dq_source(
        dq, q, do, lse, delta, rp, K0, V0, M0, T0, sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
        p0, H, qk_scale, p_lo, p_hi, HAS_M0, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
    )
    if NUM_SRC > 1:
        dq = _dq_source(
            dq, q, do, lse, delta, rp, K1, V1, M1, T1, sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
            p0, H, qk_scale, p_lo, p_hi, HAS_M1, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 2:
        dq = _dq_source(
            dq, q, do, lse, delta, rp, K2, V2, M2, T2, sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
            p0, H, qk_scale, p_lo, p_hi, HAS_M2, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 3:
        dq = _dq_source(
            dq, q, do, lse, delta, rp, K3, V3, M3, T3, sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
            p0, H, qk_scale, p_lo, p_hi, HAS_M3, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    dq = dq * sm_scale
    tl.store(
        DQ + (br64 * sdqb + tq * sdqt + hr * sdqh)[:, None] + offs_d[None, :] * sdqd,
        dq.to(DQ.dtype.element_ty), mask=rmask,
    )


@triton.jit
def _packed_source(
    dq, q, do, lse, delta, row_p, do_ok, DO, do_off, sdd,
    K, V, M, Tk, DK, DV,
    skb, skt, skh, skd, svb, svt, svh, svd, smb, smt,
    sdkb, sdkt, sdkh, sdkd, sdvb, sdvt, sdvh, sdvd,
    p0, n_here, H, qk_scale, sm_scale,
    HAS_MASK: tl.constexpr, PACK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """All of one source's memory for the program's problems in one tile: write dK, dV, return dQ += dS K."""
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    cols = tl.arange(0, BLOCK_N)
    pc = cols // Tk
    tk = cols - pc * Tk
    gpc = p0 + pc
    bc = gpc // H
    hc = gpc - bc * H
    c_ok = cols < n_here * Tk
    bc64 = bc.to(tl.int64)
    kv_mask = c_ok[:, None] & d_ok[None, :]
    k = tl.load(K + (bc64 * skb + tk * skt + hc * skh)[:, None] + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
    v = tl.load(V + (bc64 * svb + tk * svt + hc * svh)[:, None] + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
    if PACK > 1:  # dQ sums over the keys of several problems: see finite_or_zero
        k = finite_or_zero(k)
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale  # (rows, keys)
    if HAS_MASK:
        s = s + pad_bias(tl.load(M + bc64 * smb + tk * smt, mask=c_ok, other=1))[None, :]
    own = (row_p[:, None] == pc[None, :]) & c_ok[None, :]
    s = tl.where(own, s, float("-inf"))
    p = tl.math.exp2(s - lse[:, None])
    if PACK > 1:  # a NaN lse (a NaN row of another problem) gives exp2(-inf - NaN) = NaN
        p = tl.where(own, p, 0.0)
    if PACK > 1:
        if do_ok:
            dv = tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PREC)
        else:
            dv = _dv_per_problem(tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32), tl.trans(p.to(do.dtype)), DO,
                                 do_off, sdd, row_p, pc, 0, n_here, False, BLOCK_D, HEAD_DIM, PREC)
    else:
        dv = tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PREC)
    dp = tl.dot(do, tl.trans(v), input_precision=PREC)
    ds = p * (dp - delta[:, None])
    if PACK > 1:
        ds = tl.where(own, ds, 0.0)
    ds = ds.to(q.dtype)
    dk = tl.dot(tl.trans(ds), q, input_precision=PREC) * sm_scale
    dq += tl.dot(ds, k, input_precision=PREC)
    tl.store(DK + (bc64 * sdkb + tk * sdkt + hc * sdkh)[:, None] + offs_d[None, :] * sdkd,
             dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + (bc64 * sdvb + tk * sdvt + hc * sdvh)[:, None] + offs_d[None, :] * sdvd,
             dv.to(DV.dtype.element_ty), mask=kv_mask)
    return dq


@triton.jit(do_not_specialize=VARYING)
def cmra_bwd_packed_kernel(
    Q, sqb, sqt, sqh, sqd,
    O, sob, sot, soh, sod,
    DO, sdb, sdt, sdh, sdd,
    DQ, sdqb, sdqt, sdqh, sdqd,
    LSE,
    K0, V0, M0, T0, sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
    K1, V1, M1, T1, sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
    K2, V2, M2, T2, sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
    K3, V3, M3, T3, sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
    DK0, DV0, DK1, DV1, DK2, DV2, DK3, DV3,
    sdk0b, sdk0t, sdk0h, sdk0d, sdv0b, sdv0t, sdv0h, sdv0d,
    sdk1b, sdk1t, sdk1h, sdk1d, sdv1b, sdv1t, sdv1h, sdv1d,
    sdk2b, sdk2t, sdk2h, sdk2d, sdv2b, sdv2t, sdv2h, sdv2d,
    sdk3b, sdk3t, sdk3h, sdk3d, sdv3b, sdv3t, sdv3h, sdv3d,
    H, Tq, n_prob, qk_scale, sm_scale,
    NUM_SRC: tl.constexpr,
    HAS_M0: tl.constexpr, HAS_M1: tl.constexpr, HAS_M2: tl.constexpr, HAS_M3: tl.constexpr,
    PACK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HEAD_DIM: tl.constexpr, PREC: tl.constexpr,
):
    """Whole backward of PACK short problems in one program (needs PACK*Tq <= BLOCK_M and
    PACK*Tk_i <= BLOCK_N): delta inline, dK/dV of every source, dQ. grid = (ceil(n_prob / PACK),).
    Reads Q, O, dO, K_i, V_i once and writes dQ, dK_i, dV_i once: the minimum traffic."""
    pid_g = tl.program_id(0)
    p0 = pid_g * PACK
    n_here = tl.minimum(n_prob - p0, PACK)
    rows = tl.arange(0, BLOCK_M)
    rp = rows // Tq
    tq = rows - rp * Tq
    gpr = p0 + rp
    br = gpr // H
    hr = gpr - br * H
    r_ok = rows < n_here * Tq
    br64 = br.to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    rmask = r_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    q = tl.load(Q + (br64 * sqb + tq * sqt + hr * sqh)[:, None] + offs_d[None, :] * sqd, mask=rmask, other=0.0)
    o = tl.load(O + (br64 * sob + tq * sot + hr * soh)[:, None] + offs_d[None, :] * sod, mask=rmask, other=0.0)
    do_off = br64 * sdb + tq * sdt + hr * sdh
    do = tl.load(DO + do_off[:, None] + offs_d[None, :] * sdd, mask=rmask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    do_ok = True
    if PACK > 1:  # dK and dV sum over the rows of several problems: see finite_or_zero
        q = finite_or_zero(q)
        do = finite_or_zero(do)
        do_ok = all_finite(delta)  # delta is NaN or inf where a row of dO is
    lse = tl.load(LSE + gpr.to(tl.int64) * Tq + tq, mask=r_ok, other=0.0)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq = _packed_source(
        dq, q, do, lse, delta, rp, do_ok, DO, do_off, sdd, K0, V0, M0, T0, DK0, DV0,
        sk0b, sk0t, sk0h, sk0d, sv0b, sv0t, sv0h, sv0d, sm0b, sm0t,
        sdk0b, sdk0t, sdk0h, sdk0d, sdv0b, sdv0t, sdv0h, sdv0d,
        p0, n_here, H, qk_scale, sm_scale, HAS_M0, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
    )
    if NUM_SRC > 1:
        dq = _packed_source(
            dq, q, do, lse, delta, rp, do_ok, DO, do_off, sdd, K1, V1, M1, T1, DK1, DV1,
            sk1b, sk1t, sk1h, sk1d, sv1b, sv1t, sv1h, sv1d, sm1b, sm1t,
            sdk1b, sdk1t, sdk1h, sdk1d, sdv1b, sdv1t, sdv1h, sdv1d,
            p0, n_here, H, qk_scale, sm_scale, HAS_M1, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 2:
        dq = _packed_source(
            dq, q, do, lse, delta, rp, do_ok, DO, do_off, sdd, K2, V2, M2, T2, DK2, DV2,
            sk2b, sk2t, sk2h, sk2d, sv2b, sv2t, sv2h, sv2d, sm2b, sm2t,
            sdk2b, sdk2t, sdk2h, sdk2d, sdv2b, sdv2t, sdv2h, sdv2d,
            p0, n_here, H, qk_scale, sm_scale, HAS_M2, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    if NUM_SRC > 3:
        dq = _packed_source(
            dq, q, do, lse, delta, rp, do_ok, DO, do_off, sdd, K3, V3, M3, T3, DK3, DV3,
            sk3b, sk3t, sk3h, sk3d, sv3b, sv3t, sv3h, sv3d, sm3b, sm3t,
            sdk3b, sdk3t, sdk3h, sdk3d, sdv3b, sdv3t, sdv3h, sdv3d,
            p0, n_here, H, qk_scale, sm_scale, HAS_M3, PACK, BLOCK_N, BLOCK_D, HEAD_DIM, PREC,
        )
    dq = dq * sm_scale
    tl.store(DQ + (br64 * sdqb + tq * sdqt + hr * sdqh)[:, None] + offs_d[None, :] * sdqd,
             dq.to(DQ.dtype.element_ty), mask=rmask)
