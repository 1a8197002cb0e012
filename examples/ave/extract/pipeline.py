"""One video to its per-second features: decode, sample, run VGG-19 and VGGish, write the work file.

Axis legend: D whole seconds, k frames sampled per second, B a batch of frames or audio examples,
S = 224 frame side, h, w pool5 cells (7 x 7), C visual channels (512), t 96 log-mel frames, m 64 mel bands,
E 128 audio channels.

Memory is bounded by one decoded frame, a batch of ``batch_size`` 224x224 frames, the seconds whose frames are
in flight, and one second (``audio_chunking="stream"``: the whole track) of audio; the (D, E) audio embeddings
(0.5 kB per second) stay in memory, the visual rows go to the work file as each second completes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import logmel
from .convention import Convention
from .decode import MAX_PIXELS, VideoInfo, frames_at, probe, scan
from .errors import VideoError
from .image import PREPROCESS
from .resample import resample
from .sampling import index_rule, time_rule, whole_seconds
from .vggish import audioset_postprocess
from .work import WorkFile, source_signature

AUDIO_BATCH = 64


@dataclass
class Networks:
    """The two networks (and the optional PCA), on ``device``, with the fingerprint of their weight files."""

    visual: torch.nn.Module  # (B, 3, S, S) -> (B, h, w, C)
    audio: torch.nn.Module  # (B, t, m) -> (B, E)
    device: torch.device
    weights: dict  # name -> WeightFile.fingerprint()
    pca: tuple[torch.Tensor, torch.Tensor] | None = None  # (E, E) eigen vectors, (E,) means: AudioSet post-processing
    visual_shape: tuple[int, int, int] = (7, 7, 512)  # (h, w, C) of one frame's map


@dataclass
class Timer:
    """Wall seconds per stage (decode: demuxing, decoding, colour conversion and FFmpeg's audio resampling)."""

    device: torch.device = torch.device("cpu")
    seconds: dict = field(default_factory=lambda: dict.fromkeys(
        ("decode", "frame_resize", "audio_frontend", "visual_network", "audio_network"), 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start


def settings_of(convention: Convention, networks: Networks, dtype: str) -> dict:
    return {"convention": convention.to_dict(), "weights": networks.weights, "dtype": dtype}


class AudioFeatures:
    """One-second int16 chunks (a, ch) at the wav rate -> VGGish embeddings (D, E), batched."""

    def __init__(self, convention: Convention, networks: Networks, timer: Timer):
        self.convention, self.networks, self.timer = convention, networks, timer
        self.examples: list[torch.Tensor] = []
        self.embeddings: list[torch.Tensor] = []
        self.track: list[np.ndarray] = []  # stream chunking: the whole track, mono
        self.done_seconds = 0

    def add_second(self, chunk: np.ndarray) -> None:
        self.done_seconds += 1
        with self.timer.stage("audio_frontend"):
            mono = mono_float(chunk)
            if self.convention.audio_chunking == "stream":
                self.track.append(mono)
                return
            wave = torch.from_numpy(resample(mono, self.convention.wav_rate, logmel.SAMPLE_RATE))
            self.examples.append(logmel.second_example(wave).to(torch.float32))
        if len(self.examples) == AUDIO_BATCH:
            self._run()

    def finish(self, rest: np.ndarray, seconds: int) -> np.ndarray:
        """Embeddings (seconds, E) float64; ``rest`` is the partial last second (used when it is a whole one)."""
        if self.done_seconds < seconds and len(rest):
            self.add_second(rest)
        if self.convention.audio_chunking == "stream":
            with self.timer.stage("audio_frontend"):
                track = np.concatenate(self.track) if self.track else np.zeros(0)
                wave = torch.from_numpy(resample(track, self.convention.wav_rate, logmel.SAMPLE_RATE))
                self.examples = list(logmel.stream_examples(wave).to(torch.float32)[:seconds])
        self._run()
        out = torch.cat(self.embeddings) if self.embeddings else torch.zeros(0, 128, dtype=torch.float64)
        return out[:seconds].numpy()

    def _run(self) -> None:
        if not self.examples:
            return
        with self.timer.stage("audio_network"), torch.inference_mode():
            batch = torch.stack(self.examples).to(self.networks.device)
            emb = self.networks.audio(batch)
            if self.networks.pca is not None:
                eigen, means = (p.to(self.networks.device) for p in self.networks.pca)
                emb = audioset_postprocess(emb, eigen, means)
            self.embeddings.append(emb.to("cpu", torch.float64))
        self.examples = []


def mono_float(chunk: np.ndarray) -> np.ndarray:
    """(a, ch) int16 -> (a,) float64: / 32768, mean over channels (vggish_input.py)."""
    x = chunk.astype(np.float64) / 32768.0
    return x.mean(axis=1) if x.ndim == 2 else x


class VisualFeatures:
    """Frames (index, RGB) -> the mean pool5 map of each second, written to ``out`` as each second completes."""

    def __init__(self, selection: np.ndarray, visual_weights: str, networks: Networks, out, batch_size: int,
                 timer: Timer):
        self.selection, self.networks, self.out, self.timer = selection, networks, out, timer
        self.resize, self.to_input = PREPROCESS[visual_weights]
        self.batch_size = batch_size
        self.seconds_of = {}  # frame index -> seconds it stands for (with multiplicity)
        for second, row in enumerate(selection.tolist()):
            for index in row:
                self.seconds_of.setdefault(index, []).append(second)
        self.sums: dict[int, torch.Tensor] = {}
        self.counts = np.zeros(len(selection), dtype=np.int64)
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.written = 0

    def add(self, index: int, rgb: np.ndarray) -> None:
        with self.timer.stage("frame_resize"):
            self.pending.append((index, self.resize(rgb)))
        if len(self.pending) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with self.timer.stage("frame_resize"):
            batch = self.to_input(torch.stack([f for _, f in self.pending])).to(self.networks.device)
        with self.timer.stage("visual_network"), torch.inference_mode():
            maps = self.networks.visual(batch).to("cpu", torch.float64)
        for (index, _), m in zip(self.pending, maps):
            for second in self.seconds_of[index]:
                self.sums[second] = self.sums[second] + m if second in self.sums else m.clone()
                self.counts[second] += 1
        self.pending = []
        k = self.selection.shape[1]
        while self.written < len(self.selection) and self.counts[self.written] == k:
            self.out[self.written] = (self.sums.pop(self.written) / k).numpy()
            self.written += 1


@dataclass
class VideoSummary:
    """What one video gave (stored in its work file and in the release's index)."""

    seconds: int  # D: whole seconds of both streams, one feature row each
    duration_video: float  # index rule: N / fps; time rule: last timestamp + one frame
    duration_audio: float
    frames: int  # N: decoded (or the container's count with --frame-count container)
    container_frames: int
    fps: str
    width: int
    height: int
    audio_rate: int
    audio_channels: int
    notes: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def plan(info: VideoInfo, found, convention: Convention) -> tuple[VideoSummary, np.ndarray]:
    """The whole seconds D of the video and the (D, k) frame indices that stand for them."""
    notes, fps, decoded = [], info.fps, len(found.frame_times)
    if convention.frame_rule == "time":
        frames, duration_video = decoded, float(found.frame_times[-1] + 1 / fps)
    else:
        frames = decoded if convention.frame_count == "decoded" else info.container_frames
        if frames < 1:
            raise VideoError(info.path, "the container states neither a frame count nor a duration: pass "
                             "--frame-count decoded")
        duration_video = float(frames / fps)
    if decoded and info.container_frames and decoded != info.container_frames:
        notes.append(f"the container states {info.container_frames} frames, {decoded} were decoded "
                     f"(--frame-count {convention.frame_count} uses {frames})")
    duration_audio = found.audio_samples / convention.wav_rate
    video_seconds, audio_seconds = whole_seconds(duration_video), whole_seconds(duration_audio)
    seconds = min(video_seconds, audio_seconds)
    if seconds < 1:
        raise VideoError(info.path, f"shorter than one second: video {duration_video:.3f} s, audio "
                         f"{duration_audio:.3f} s; expected at least 0.975 s of both (one VGGish example)")
    if video_seconds != audio_seconds:
        notes.append(f"the video has {video_seconds} whole seconds, the audio {audio_seconds}: {seconds} are used")
    k = convention.frames_per_second
    try:
        if convention.frame_rule == "index":
            selection = index_rule(frames, fps, seconds, k)
        else:
            selection = time_rule(found.frame_times, seconds, k)
    except ValueError as exc:
        raise VideoError(info.path, str(exc)) from None
    summary = VideoSummary(seconds, round(duration_video, 6), round(duration_audio, 6), frames, info.container_frames,
                           f"{fps.numerator}/{fps.denominator}", info.width, info.height, info.audio_rate,
                           info.audio_channels, notes)
    return summary, selection


def _timed_decode(timer: Timer, run):
    """Run ``run()`` and book its wall time, less what its callbacks booked to other stages, as decoding."""
    start, booked = time.perf_counter(), sum(timer.seconds.values())
    try:
        return run()
    finally:
        timer.seconds["decode"] += time.perf_counter() - start - (sum(timer.seconds.values()) - booked)


def extract_video(path, target: Path, convention: Convention, networks: Networks, settings: dict, *,
                  batch_size: int = 32, max_pixels: int = MAX_PIXELS, timer: Timer | None = None) -> VideoSummary:
    """Extract ``path`` into the work file ``target`` (renamed into place when complete); VideoError if unusable."""
    timer = timer or Timer(networks.device)
    info = _timed_decode(timer, lambda: probe(path, max_pixels))
    source = source_signature(path)
    audio = AudioFeatures(convention, networks, timer)
    index_rule_used = convention.frame_rule == "index"
    found = _timed_decode(timer, lambda: scan(
        info, convention.wav_rate, audio.add_second,
        decode_video=not index_rule_used or convention.frame_count == "decoded", check_constant_rate=index_rule_used,
        max_pixels=max_pixels))
    summary, selection = plan(info, found, convention)
    embeddings = audio.finish(found.audio_rest, summary.seconds)
    out = WorkFile(target)
    try:
        out.create(summary.seconds, networks.visual_shape, embeddings.shape[1], settings["dtype"])
        out.audio[:] = embeddings
        visual = VisualFeatures(selection, convention.visual_weights, networks, out.visual, batch_size, timer)

        def frames():
            for index, rgb in frames_at(info, selection.ravel(), max_pixels, check_constant_rate=index_rule_used):
                visual.add(index, rgb)
            visual.flush()

        _timed_decode(timer, frames)
        if visual.written != summary.seconds:
            raise VideoError(path, f"only {visual.written} of {summary.seconds} seconds got their frames")
        out.commit(settings, source, summary.to_dict())
    except BaseException:
        out.abort()
        raise
    return summary
