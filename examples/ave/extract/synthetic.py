"""Small synthetic videos whose frames say which frame they are, with a tone in chosen seconds (tests,
benchmark, the docs' figure).

Axis legend: H, W pixels, c colour channels, a audio samples, ch audio channels.

Each frame carries its index and its time (ms) as two rows of 16-pixel black/white blocks (bits, least
significant first), readable after lossy compression (``read_frame_code``); the bottom row holds a red and a
blue block (colour order). The audio is silent (exact zeros) except a sine tone in the seconds asked for.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

BLOCK = 16
CODECS = {".mp4": ("mpeg4", "aac"), ".mkv": ("mpeg4", "pcm_s16le"), ".avi": ("mpeg4", "pcm_s16le"),
          ".webm": ("libvpx-vp9", "libopus")}


def frame_image(index: int, time_ms: int, width: int = 256, height: int = 96) -> np.ndarray:
    """(H, W, 3) uint8: bits of ``index`` in block row 0, of ``time_ms`` in row 2, red and blue blocks at the
    bottom left, grey elsewhere."""
    img = np.full((height, width, 3), 128, dtype=np.uint8)
    bits = width // BLOCK
    for row, value in ((0, index), (2, time_ms)):
        for b in range(bits):
            on = (value >> b) & 1
            img[row * BLOCK:(row + 1) * BLOCK, b * BLOCK:(b + 1) * BLOCK] = 255 if on else 0
    bottom = height - BLOCK
    img[bottom:, :BLOCK] = (255, 0, 0)
    img[bottom:, BLOCK:2 * BLOCK] = (0, 0, 255)
    return img


def read_frame_code(rgb: np.ndarray) -> tuple[int, int]:
    """(index, time_ms) from a decoded (H, W, 3) frame of ``frame_image`` (at its original size)."""
    width = rgb.shape[1]
    values = []
    for row in (0, 2):
        v = 0
        for b in range(width // BLOCK):
            cell = rgb[row * BLOCK + 4:(row + 1) * BLOCK - 4, b * BLOCK + 4:(b + 1) * BLOCK - 4]
            v |= int(cell.mean() > 128) << b
        values.append(v)
    return values[0], values[1]


def tone(seconds: float, rate: int, tone_seconds=(), hz: float = 1000.0, channels: int = 2) -> np.ndarray:
    """(a, ch) int16: a sine of amplitude 0.5 in the whole seconds listed in ``tone_seconds``, zeros elsewhere."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    on = np.isin(np.floor(t).astype(np.int64), list(tone_seconds))
    x = np.where(on, 0.5 * np.sin(2 * np.pi * hz * t), 0.0)
    return np.repeat(np.round(x * 32767).astype(np.int16)[:, None], channels, axis=1)


def write_video(path: str | os.PathLike, seconds: float = 3.0, *, fps=25, size=(256, 96), tone_seconds=(),
                tone_hz: float = 1000.0, audio_rate: int = 44100, channels: int = 2, video: bool = True,
                audio: bool = True, audio_seconds: float | None = None, frame_durations_ms=None,
                codecs: tuple[str, str] | None = None) -> Path:
    """Write a test video; ``frame_durations_ms`` (a list, cycled) makes a variable frame rate."""
    import av

    path = Path(path)
    vcodec, acodec = codecs or CODECS[path.suffix.lower()]
    fps = Fraction(fps).limit_denominator(100000)
    with av.open(os.fspath(path), "w") as container:
        vs = container.add_stream(vcodec, rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            vs.bit_rate = 4_000_000
            if vcodec.startswith("libvpx"):
                vs.options = {"deadline": "realtime", "cpu-used": "8"}
            if frame_durations_ms is not None:
                vs.codec_context.time_base = Fraction(1, 1000)
        rate = 48000 if acodec == "libopus" else audio_rate
        as_ = container.add_stream(acodec, rate=rate, layout="stereo" if channels == 2 else "mono") if audio else None
        if vs is not None:
            _encode_frames(container, vs, seconds, fps, size, frame_durations_ms)
        if as_ is not None:
            samples = tone(seconds if audio_seconds is None else audio_seconds, rate, tone_seconds, tone_hz, channels)
            _encode_audio(container, as_, samples, rate, channels)
    return path


def _encode_frames(container, stream, seconds, fps, size, durations) -> None:
    import av

    t_ms, n = 0, 0
    while (t_ms < seconds * 1000) if durations is not None else (n < round(seconds * fps)):
        ms = t_ms if durations is not None else int(n * 1000 / fps)
        frame = av.VideoFrame.from_ndarray(frame_image(n, ms, *size), format="rgb24")
        frame.pts = t_ms if durations is not None else n
        if durations is not None:
            frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
        if durations is not None:
            t_ms += durations[n % len(durations)]
        n += 1
    for packet in stream.encode():
        container.mux(packet)


def _encode_audio(container, stream, samples, rate, channels) -> None:
    import av

    layout = "stereo" if channels == 2 else "mono"
    step = 960 if stream.codec_context.name == "libopus" else 1024
    for start in range(0, len(samples), step):
        chunk = np.ascontiguousarray(samples[start:start + step]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
