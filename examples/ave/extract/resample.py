"""Band-limited resampling as resampy 0.2 did it (``resampy.resample(x, sr_orig, sr_new)``, default filter
``kaiser_best``): the per-second 44.1 kHz -> 16 kHz step of AVE's ``vggish_input.py``.

Axis legend: s input samples, o output samples, k filter taps of one wing.

The filter is recomputed from its published design (resampy <= 0.2.2's ``kaiser_best``: a 64-zero-crossing
sinc, 512 table entries per crossing, roll-off 0.9475937167399596, Kaiser window beta 14.769656459379492;
resampy 0.3 replaced it with another filter). Output length ``int(s * sr_new / sr_orig)``; output sample t
sits at input time ``t * sr_orig / sr_new``, accumulated step by step as resampy does.
"""

from __future__ import annotations

import functools

import numpy as np

NUM_ZEROS = 64
TABLE_PER_ZERO = 512  # 2**9
ROLLOFF = 0.9475937167399596
KAISER_BETA = 14.769656459379492
BLOCK = 2048  # output samples computed at once (bounds the (o, k) index arrays)


@functools.lru_cache(maxsize=1)
def kaiser_best_half_window() -> np.ndarray:
    """The right wing of the interpolation filter, (64 * 512 + 1,) float64."""
    n = TABLE_PER_ZERO * NUM_ZEROS
    sinc = ROLLOFF * np.sinc(ROLLOFF * np.linspace(0.0, NUM_ZEROS, n + 1))
    taper = np.kaiser(2 * n + 1, KAISER_BETA)[n:]
    window = taper * sinc
    window.setflags(write=False)
    return window


def output_times(num_out: int, step: float) -> np.ndarray:
    """0, step, step + step, ...: the input position of each output sample, summed one step at a time."""
    times = np.empty(num_out, dtype=np.float64)
    times[:1] = 0.0
    np.cumsum(np.full(num_out - 1, step), out=times[1:])
    return times


def _wing(x_rows: np.ndarray, window_rows: np.ndarray, delta_rows: np.ndarray, rows: np.ndarray,
          frac: np.ndarray) -> np.ndarray:
    """One wing of the filter at every output: sum_i (window + eta delta)[offset + i*step] * x_rows[rows][i]."""
    index_frac = frac * TABLE_PER_ZERO
    offset = index_frac.astype(np.int64)
    eta = index_frac - offset
    weights = window_rows[offset] + eta[:, None] * delta_rows[offset]  # (o, k)
    return np.einsum("ok,ok->o", weights, x_rows[rows])


def _strided_rows(a: np.ndarray, rows: int, taps: int, step: int) -> np.ndarray:
    """(rows, taps) view: row r is a[r], a[r + step], a[r + 2 step], ..."""
    return np.lib.stride_tricks.as_strided(a, shape=(rows, taps), strides=(a.strides[0], a.strides[0] * step),
                                           writeable=False)


def resample(x: np.ndarray, sr_orig: int, sr_new: int) -> np.ndarray:
    """(s,) float64 at ``sr_orig`` -> (int(s * sr_new / sr_orig),) float64 at ``sr_new``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if sr_orig == sr_new:
        return x.copy()
    ratio = float(sr_new) / sr_orig
    num_out = int(len(x) * ratio)
    if num_out < 1:
        raise ValueError(f"x holds {len(x)} samples: too few to resample from {sr_orig} Hz to {sr_new} Hz")
    scale = min(1.0, ratio)
    half = kaiser_best_half_window() * ratio if ratio < 1 else kaiser_best_half_window()
    step = int(scale * TABLE_PER_ZERO)
    pad = -(-len(half) // step) + 1  # taps of one wing, at most
    # resampy takes (len(half) - offset) // step taps: the table entries up to len(half) - step
    keep = len(half) - step + 1
    window = np.zeros(len(half) + pad * step)
    window[:keep] = half[:keep]
    delta = np.zeros_like(window)
    delta[:keep] = np.diff(half)[:keep]
    window_rows = _strided_rows(window, step + 1, pad, step)  # offset -> its taps
    delta_rows = _strided_rows(delta, step + 1, pad, step)
    x_padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    ahead = np.lib.stride_tricks.sliding_window_view(x_padded, pad)  # row j + pad: x[j], x[j+1], ...
    behind = ahead[:, ::-1]  # row j + 1: x[j], x[j-1], ...
    times = output_times(num_out, 1.0 / ratio)
    y = np.empty(num_out, dtype=np.float64)
    for lo in range(0, num_out, BLOCK):
        t = times[lo:lo + BLOCK]
        n = t.astype(np.int64)
        frac = scale * (t - n)
        left = _wing(behind, window_rows, delta_rows, n + 1, frac)
        right = _wing(ahead, window_rows, delta_rows, n + 1 + pad, scale - frac)
        y[lo:lo + BLOCK] = left + right
    return y
