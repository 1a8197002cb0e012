"""Decoding with PyAV (FFmpeg inside the wheel), streaming: at most one decoded frame and one second of
audio are held at a time.

Axis legend: N frames, H, W pixels, c colour channels (RGB), a audio samples, ch audio channels.

Two passes over a file. ``scan``: count the decoded frames and their timestamps, check the frame rate is
constant, and cut the audio track into one-second chunks (``AudioSeconds``). ``frames_at``: decode again and
hand over, as RGB uint8, the frames whose indices were chosen (``sampling.py``). The audio is first written as
16-bit PCM at the convention's wav rate with its channels kept (what ``ffmpeg -i VIDEO -ar 44100 x.wav`` gives),
by FFmpeg's resampler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import VideoError

MAX_PIXELS = 4096 * 2160  # DCI 4K; one decoded RGB frame of this size is 27 MB
IRREGULAR_TOLERANCE = 0.1  # a frame interval more than 10% (+ one tick) off the nominal one is variable frame rate


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - the extra installs it
        raise VideoError("<PyAV>", "PyAV is not installed: pip install av (or the avattn[video] extra)") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, before decoding."""

    path: str
    width: int
    height: int
    fps: Fraction  # the video stream's average frame rate
    container_frames: int  # the stated count, else duration x fps; 0 when the container says neither
    audio_rate: int
    audio_channels: int
    audio_layout: str
    video_codec: str
    audio_codec: str


def _open(path: Path):
    av = _av()
    try:
        return av.open(os.fspath(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(path, f"cannot be opened as a video file ({exc.strerror or exc})") from None
    except (PermissionError, IsADirectoryError, FileNotFoundError) as exc:
        raise VideoError(path, f"cannot be read ({exc.strerror or exc})") from None


def probe(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Streams, size and rates of ``path``; VideoError when a stream is missing or the frame is too large."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file" if not path.exists() else "not a regular file")
    with _open(path) as container:
        videos = [s for s in container.streams.video if not _is_cover_art(s)]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise VideoError(path, "has neither a video nor an audio stream (not a video file)")
        if not videos:
            raise VideoError(path, "has no video stream (an audio file?): the AVE features need the frames")
        if not audios:
            raise VideoError(path, "has no audio stream: the AVE features need the sound (a silent video can get "
                             "a silent track: ffmpeg -i IN -f lavfi -i anullsrc=r=44100:cl=stereo -shortest "
                             "-c:v copy OUT)")
        v, a = videos[0], audios[0]
        width, height = v.codec_context.width, v.codec_context.height
        check_size(path, width, height, max_pixels)
        fps = v.average_rate or v.guessed_rate or v.base_rate
        if not fps or fps <= 0:
            raise VideoError(path, "the video stream declares no frame rate")
        return VideoInfo(os.fspath(path), width, height, Fraction(fps), container_frame_count(container, v, fps),
                         int(a.rate or 0),
                         int(a.channels or 0), a.layout.name if a.layout else "", v.codec_context.name,
                         a.codec_context.name)


def container_frame_count(container, stream, fps) -> int:
    """The frame count the container states, else its duration x frame rate (imageio's ``len(reader)``); 0 if
    neither is known."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return int(round(float(stream.duration * stream.time_base * fps)))
    if container.duration:
        return int(round(container.duration / 1_000_000 * float(fps)))
    return 0


def _is_cover_art(stream) -> bool:
    disposition = getattr(stream, "disposition", None)
    return bool(disposition is not None and "attached_pic" in str(disposition).lower())


def check_size(path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(path, f"resolution {width}x{height} ({width * height / 1e6:.1f} Mpixel) exceeds "
                         f"--max-pixels {max_pixels} ({max_pixels / 1e6:.1f} Mpixel): scale it down first "
                         "(ffmpeg -i IN -vf scale=-2:720 OUT) or raise --max-pixels")


@dataclass
class FrameClock:
    """Frame timestamps in order; VideoError on the first frame interval that breaks a constant rate."""

    path: str
    time_base: Fraction
    fps: Fraction
    check_constant: bool
    times: list[float] = field(default_factory=list)
    _first: int | None = None
    _last: int | None = None

    def add(self, pts: int | None) -> None:
        if pts is None:  # no timestamp: counted, nothing to check
            self.times.append(self.times[-1] + float(1 / self.fps) if self.times else 0.0)
            return
        if self._first is None:
            self._first = pts
        if self._last is not None and self.check_constant:
            self._check_interval(pts - self._last)
        self._last = pts
        self.times.append(float((pts - self._first) * self.time_base))

    def _check_interval(self, ticks: int) -> None:
        nominal = 1 / (self.fps * self.time_base)  # in ticks
        if abs(ticks - nominal) > IRREGULAR_TOLERANCE * nominal + 1:
            at = float((self._last - self._first) * self.time_base)
            raise VideoError(
                self.path,
                f"variable frame rate: the frame after {at:.3f} s comes {float(ticks * self.time_base) * 1e3:.1f} ms "
                f"later, the nominal interval is {float(1 / self.fps) * 1e3:.1f} ms ({float(self.fps):.3f} fps); "
                "the index rule assumes a constant rate: pass --frame-rule time, or re-encode at a constant rate "
                "(ffmpeg -i IN -fps_mode cfr -r 25 OUT)")


class AudioSeconds:
    """Cuts a stream of int16 samples (a, ch) into one-second chunks of ``rate`` samples; ``flush`` returns the
    partial last second (possibly empty)."""

    def __init__(self, rate: int, emit: Callable[[np.ndarray], None]):
        self.rate, self.emit = rate, emit
        self._parts: list[np.ndarray] = []
        self._held = 0
        self.samples = 0

    def push(self, samples: np.ndarray) -> None:
        self.samples += len(samples)
        while len(samples):
            take = min(self.rate - self._held, len(samples))
            self._parts.append(samples[:take])
            self._held += take
            samples = samples[take:]
            if self._held == self.rate:
                self.emit(np.concatenate(self._parts))
                self._parts, self._held = [], 0

    def flush(self) -> np.ndarray:
        rest = np.concatenate(self._parts) if self._parts else np.zeros((0, 1), dtype=np.int16)
        self._parts, self._held = [], 0
        return rest


@dataclass
class Scan:
    frame_times: np.ndarray  # (N,) seconds from the first decoded frame; empty when video was not decoded
    audio_samples: int  # at the wav rate
    audio_rest: np.ndarray  # the partial last second, (a, ch) int16


def scan(info: VideoInfo, wav_rate: int, on_second: Callable[[np.ndarray], None], *, decode_video: bool,
         check_constant_rate: bool, max_pixels: int = MAX_PIXELS) -> Scan:
    """One pass: every frame's timestamp (when ``decode_video``) and the audio, one second at a time."""
    av = _av()
    path = info.path
    with _open(Path(path)) as container:
        v = container.streams.video[0] if decode_video else None
        a = container.streams.audio[0]
        clock = FrameClock(path, Fraction(v.time_base), info.fps, check_constant_rate) if v is not None else None
        chunker = AudioSeconds(wav_rate, on_second)
        for stream in (v, a):
            if stream is not None:
                stream.thread_type = "AUTO"
        try:
            resampler = av.AudioResampler(format="s16", layout=a.layout, rate=wav_rate)
            for packet in container.demux(*[s for s in (v, a) if s is not None]):
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        if not clock.times:  # the header may not state the size: check the first frame's
                            check_size(path, frame.width, frame.height, max_pixels)
                        clock.add(frame.pts)
                    else:
                        _push_audio(chunker, resampler.resample(frame))
            _push_audio(chunker, resampler.resample(None))
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(path, f"cannot be decoded ({getattr(exc, 'strerror', None) or exc})") from None
    times = np.asarray(clock.times if clock is not None else [], dtype=np.float64)
    if decode_video and not len(times):
        raise VideoError(path, "no video frame could be decoded")
    return Scan(times, chunker.samples, chunker.flush())


def _push_audio(chunker: AudioSeconds, frames) -> None:
    for f in frames:
        chunker.push(f.to_ndarray().reshape(f.samples, -1))


def frames_at(info: VideoInfo, indices: np.ndarray, max_pixels: int, *, check_constant_rate: bool,
              interpolation: str = "BICUBIC") -> Iterator[tuple[int, np.ndarray]]:
    """Decode the video and yield (index, (H, W, 3) uint8 RGB) for each distinct ``indices`` (sorted), in order.

    Indices past the last decoded frame get the last frame (a container count larger than the decoded one).
    RGB conversion by FFmpeg's swscale with bicubic interpolation, FFmpeg's command-line default.
    """
    av = _av()
    wanted = np.unique(indices)
    path = info.path
    with _open(Path(path)) as container:
        v = container.streams.video[0]
        v.thread_type = "AUTO"
        clock = FrameClock(path, Fraction(v.time_base), info.fps, check_constant_rate)
        position, last = 0, None
        try:
            for n, frame in enumerate(container.decode(v)):
                clock.add(frame.pts)
                check_size(path, frame.width, frame.height, max_pixels)
                last = frame
                while position < len(wanted) and wanted[position] == n:
                    yield n, frame.to_ndarray(format="rgb24", interpolation=interpolation)
                    position += 1
                if position == len(wanted):
                    return
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(path, f"cannot be decoded ({getattr(exc, 'strerror', None) or exc})") from None
        if last is None:
            raise VideoError(path, "no video frame could be decoded")
        rgb = last.to_ndarray(format="rgb24", interpolation=interpolation)
        for n in wanted[position:]:
            yield int(n), rgb
