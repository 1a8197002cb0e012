"""The VGGish log-mel frontend: AudioSet's ``mel_features.py`` with ``vggish_params.py``'s constants, in float64.

Axis legend: s samples at 16 kHz, f STFT frames (25 ms periodic-Hann window, 10 ms hop), q frequency bins
(FFT 512 -> 257), m mel bands (64, HTK mel scale, 125..7500 Hz, DC bin zeroed), p patches of 96 frames.

One second of 16 kHz audio (16000 samples) gives 98 frames; its VGGish example is the first 96 (0.975 s of
audio: ``PATCH_MIN_SAMPLES``).
"""

from __future__ import annotations

import functools

import torch

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # round(0.025 s * 16000)
HOP_SAMPLES = 160  # round(0.010 s * 16000)
FFT_LENGTH = 512  # the next power of two >= 400
NUM_BINS = FFT_LENGTH // 2 + 1
NUM_MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96  # round(0.96 s / 10 ms)
PATCH_HOP_FRAMES = 96
PATCH_MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES  # 15600: the audio one example reads


def hertz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log(1.0 + hz / 700.0)


@functools.lru_cache(maxsize=4)
def _mel_matrix(dtype: torch.dtype) -> torch.Tensor:
    bins_mel = hertz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, NUM_BINS, dtype=torch.float64))
    edges = torch.linspace(float(hertz_to_mel(torch.tensor(MEL_LOW_HZ, dtype=torch.float64))),
                           float(hertz_to_mel(torch.tensor(MEL_HIGH_HZ, dtype=torch.float64))),
                           NUM_MEL_BANDS + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (m,)
    rising = (bins_mel[:, None] - lower) / (center - lower)  # (q, m)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0  # the DC bin
    return weights.to(dtype)


def mel_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(q, m) = (257, 64) triangular HTK-mel weights."""
    return _mel_matrix(dtype).clone()


def periodic_hann(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """0.5 - 0.5 cos(2 pi k / length), k = 0 .. length-1 (the 'periodic' Hann of mel_features.py)."""
    k = torch.arange(length, dtype=dtype)
    return 0.5 - 0.5 * torch.cos(2 * torch.pi * k / length)


def log_mel(signal: torch.Tensor) -> torch.Tensor:
    """(s,) 16 kHz waveform -> (f, m) log(mel-weighted STFT magnitude + 0.01); f = 1 + (s - 400) // 160."""
    if signal.dim() != 1 or signal.numel() < WINDOW_SAMPLES:
        raise ValueError(f"signal must be 1-D with at least {WINDOW_SAMPLES} samples, got shape {tuple(signal.shape)}")
    frames = signal.unfold(0, WINDOW_SAMPLES, HOP_SAMPLES)  # (f, 400)
    magnitude = torch.fft.rfft(frames * periodic_hann(WINDOW_SAMPLES, signal.dtype), n=FFT_LENGTH).abs()  # (f, q)
    return torch.log(magnitude @ _mel_matrix(signal.dtype) + LOG_OFFSET)


def patches(frames: torch.Tensor) -> torch.Tensor:
    """(f, m) log-mel frames -> (p, 96, m) examples, hop 96 frames (0.96 s); p = 1 + (f - 96) // 96."""
    if frames.shape[0] < PATCH_FRAMES:
        return frames.new_zeros(0, PATCH_FRAMES, frames.shape[1])
    return frames.unfold(0, PATCH_FRAMES, PATCH_HOP_FRAMES).transpose(1, 2)


def second_example(chunk: torch.Tensor) -> torch.Tensor:
    """One second of 16 kHz audio (s,) -> its one VGGish example (96, 64): the first 0.975 s.

    A chunk shorter than ``PATCH_MIN_SAMPLES`` (the last, partial second of a track) is padded with zeros to it.
    """
    if chunk.numel() < PATCH_MIN_SAMPLES:
        chunk = torch.nn.functional.pad(chunk, (0, PATCH_MIN_SAMPLES - chunk.numel()))
    return patches(log_mel(chunk))[0]


def stream_examples(signal: torch.Tensor) -> torch.Tensor:
    """A whole 16 kHz track (s,) -> (p, 96, 64): stock VGGish framing (examples at 0, 0.96, 1.92, ... s)."""
    if signal.numel() < PATCH_MIN_SAMPLES:
        signal = torch.nn.functional.pad(signal, (0, PATCH_MIN_SAMPLES - signal.numel()))
    return patches(log_mel(signal))
