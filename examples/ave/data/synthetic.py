"""Synthetic AVE: the real 4,143 annotated samples and splits, with generated features.

Axis legend: T=10 segments, H=W=7 visual grid (P=H*W=49 cells), C visual channels (512 VGG-19,
2048 ResNet-151), A=128 audio channels, K=28 event categories, V appearance/sound variants.

The labels, categories, event windows and official splits are the real ones (``meta.py``). The
features are composed on the fly, deterministically per (seed, sample), from a few-MB bank built
once per (seed, features, difficulty): category signatures (visual and audio, confusable groups
sharing part of theirs), object sprites, scene textures and a noise tape. Each sample draws only
~150 random numbers (indices, positions, gains). The generative model and why each part matters
are described in ``docs/data.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..constants import AUDIO_DIM, BACKGROUND, GRID, NUM_EVENT_CLASSES, NUM_SEGMENTS, VISUAL_DIMS
from .meta import AVEMeta, load_meta

T, P = NUM_SEGMENTS, GRID * GRID
STREAM_ANNOTATED, STREAM_NOISY, STREAM_BANK = 0, 1, 2

# Confusable groups (indices into categories.txt). Visual groups follow appearance, audio groups
# follow sound, and they differ on purpose (e.g. Shofar looks like a person but sounds like a
# horn; Cat sounds like a baby but looks like an animal): each modality's confusions are partly
# resolved by the other one.
VISUAL_GROUPS = (
    (1, 5, 19, 12),  # people: male / female speech, baby cry, shofar player
    (7, 8, 9, 14, 17, 26, 27),  # hand-held instruments
    (3, 4, 6, 11, 13, 15, 20),  # vehicles: airplane, race car, helicopter, truck, motorcycle, train, bus
    (2, 18, 22, 23, 25),  # animals: dog, goat, cat, horse, rodents
    (0, 10, 16, 21, 24),  # things: church, frying pan, clock, chainsaw, toilet
)
AUDIO_GROUPS = (
    (1, 5, 19, 22),  # voices: speech, baby cry, cat
    (3, 4, 6, 11, 13, 20, 21),  # engines: airplane, race car, helicopter, truck, motorcycle, bus, chainsaw
    (9, 14, 17, 27),  # plucked strings
    (7, 8, 26, 12, 15),  # sustained tones: violin, flute, accordion, shofar, train horn
    (0, 16),  # bells and ticks
    (2, 18, 23, 25),  # animal calls
    (10, 24),  # broadband noise: frying, toilet flush
)


def _group_of(groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    g = np.full(NUM_EVENT_CLASSES, -1, dtype=np.int64)
    for gi, members in enumerate(groups):
        g[list(members)] = gi
    assert (g >= 0).all(), "every category must belong to a group"
    return g


VISUAL_GROUP_OF = _group_of(VISUAL_GROUPS)
AUDIO_GROUP_OF = _group_of(AUDIO_GROUPS)


_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1, _MUL2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def uniforms(seed: int, stream: int, index: int, n: int) -> np.ndarray:
    """n uniforms in [0, 1) from a counter-based generator keyed by (seed, stream, index):
    splitmix64 of key + counter. ~20 us for a few hundred numbers, platform independent."""
    key = _splitmix64(_splitmix64(_splitmix64(seed) ^ stream) ^ index)
    z = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN + np.uint64(key)
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    z ^= z >> _S31
    return (z >> _S11).astype(np.float64) * (2.0**-53)


class _Draws:
    """Sequential reader of a sample's block of uniforms."""

    __slots__ = ("u", "i")

    def __init__(self, u: np.ndarray):
        self.u, self.i = u, 0

    def take(self, n: int) -> np.ndarray:
        out = self.u[self.i : self.i + n]
        self.i += n
        if self.i > self.u.size:
            raise RuntimeError("synthetic AVE: per-sample random block exhausted (bug)")
        return out

    def one(self) -> float:
        return float(self.take(1)[0])


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generative model; ``SyntheticConfig.from_difficulty(d)`` sets them from d.

    Visual amplitudes are relative to a scene cell of RMS 1; audio amplitudes to the real VGGish
    background frames (RMS ~0.28 per channel, norm ~3.2 per frame).
    """

    difficulty: float = 1.0
    visual_share: float = 0.55  # fraction of signature variance shared inside a visual group
    audio_share: float = 0.85  # same for audio
    object_strength: tuple[float, float] = (0.3, 1.0)  # per-video object amplitude (x signature RMS 1)
    # per-object extent: a rectangle of about A cells, log2 A ~ N(log2 median, sd) (clipped to 2..36 cells),
    # aspect h/w = exp(U(-aspect, aspect)); sides 1..MAX_SIDE
    object_area_median: float = 8.0
    object_area_log2_sd: float = 1.0
    object_aspect: float = 0.7
    object_jitter: tuple[float, float] = (0.3, 1.7)  # per-segment factor on the object amplitude
    noise_rms: float = 0.8  # visual noise tape RMS per cell
    max_distractors: int = 2  # silent visible objects of other categories, 0..max per video
    p_distractor_same_group: float = 0.5
    sound_level: tuple[float, float] = (0.06, 0.4)  # per-video event-sound level (x real frame norm)
    sound_jitter: tuple[float, float] = (0.2, 1.8)  # per-segment factor on sound levels
    p_audio_distractor: float = 0.9  # chance a video has an off-screen sound of another category
    audio_distractor_level: tuple[float, float] = (0.06, 0.4)
    # what an event video's background segments show: visible-but-silent / audible-but-off-screen / neither
    background_cases: tuple[float, float, float] = (0.4, 0.35, 0.25)

    @staticmethod
    def from_difficulty(difficulty: float | None = None) -> SyntheticConfig:
        """d = 1 is the default calibration; d = 0 removes noise and distractors (AV becomes easy),
        d > 1 adds visual noise, distractors and lowers the event sound level."""
        d = 1.0 if difficulty is None else float(difficulty)
        if not math.isfinite(d) or d < 0:
            raise ValueError(f"difficulty must be a finite number >= 0 or None, got {difficulty!r}")
        snr = 1.0 / (0.5 + 0.5 * d)  # 2x louder at d=0, 1x at d=1, 2/3 at d=2
        lo, hi = SyntheticConfig.sound_level
        alo, ahi = SyntheticConfig.audio_distractor_level
        return SyntheticConfig(
            difficulty=d,
            noise_rms=SyntheticConfig.noise_rms * d,
            max_distractors=int(round(SyntheticConfig.max_distractors * d)),
            sound_level=(lo * snr, hi * snr),
            p_audio_distractor=min(1.0, SyntheticConfig.p_audio_distractor * d),
            audio_distractor_level=(alo, ahi),
        )


def _relu_signature(rng: np.random.Generator, shape, shared: np.ndarray | None, share: float, sparsity: float):
    """Non-negative sparse vectors: ReLU(sqrt(s) g + sqrt(1-s) z - thr), about `sparsity` nonzero."""
    z = rng.standard_normal(shape)
    if shared is not None:
        z = math.sqrt(share) * shared + math.sqrt(1.0 - share) * z
    thr = {0.35: 0.385, 0.3: 0.524, 0.25: 0.674}[sparsity]
    return np.maximum(z - thr, 0.0)


def _rms_normalize(x: np.ndarray, axis=-1, target: float = 1.0) -> np.ndarray:
    r = np.sqrt((x**2).mean(axis=axis, keepdims=True))
    return x * (target / np.maximum(r, 1e-8))


class SyntheticAVEGenerator:
    """Deterministic feature generator: ``sample(i)`` for annotated sample i, ``noisy_sample(j)``
    for background-only video j (0..177). Returns numpy float32 visual (T, H, W, C), audio (T, A)."""

    N_VISUAL_VARIANTS = 4
    N_AUDIO_VARIANTS = 8
    N_SCENES = 24
    SCENE = 9  # scene maps are 9x9; each segment shows a 7x7 crop (camera pan of +-1 cell)
    MAX_SIDE = 6  # objects are rectangles of 1..6 x 1..6 cells (see SyntheticConfig.object_area_*)

    def __init__(
        self,
        seed: int = 0,
        features: str = "vgg19",
        difficulty: float | None = None,
        meta: AVEMeta | None = None,
        config: SyntheticConfig | None = None,
    ):
        if features not in VISUAL_DIMS:
            raise ValueError(f"features must be one of {sorted(VISUAL_DIMS)}, got {features!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed, self.features, self.difficulty = int(seed), features, difficulty
        # config (experiments only) overrides the knobs that difficulty would set
        self.cfg = config if config is not None else SyntheticConfig.from_difficulty(difficulty)
        self._config_override = config
        self.meta = meta if meta is not None else load_meta()
        self.channels = VISUAL_DIMS[features]
        self._build_banks()

    # pickling sends the constructor arguments; the bank is rebuilt (deterministically) in the worker
    def __reduce__(self):
        return (SyntheticAVEGenerator, (self.seed, self.features, self.difficulty, None, self._config_override))

    def _build_banks(self) -> None:
        C, cfg, S = self.channels, self.cfg, self.SCENE
        rng = np.random.default_rng([self.seed, STREAM_BANK, C])
        real = self.meta.noisy_audio  # (M, T, A) real VGGish background frames
        self.real_audio = np.ascontiguousarray(real, dtype=np.float32)
        frame_norm = float(np.linalg.norm(real, axis=-1).mean())
        real_sparsity = float((real > 0).mean())  # ~0.35
        sp_a = min((0.25, 0.3, 0.35), key=lambda s: abs(s - real_sparsity))

        # category signatures; group members share part of theirs
        g_v = rng.standard_normal((len(VISUAL_GROUPS), C))[VISUAL_GROUP_OF]
        sig_v = _rms_normalize(_relu_signature(rng, (NUM_EVENT_CLASSES, C), g_v, cfg.visual_share, 0.3))
        g_a = rng.standard_normal((len(AUDIO_GROUPS), AUDIO_DIM))[AUDIO_GROUP_OF]
        sig_a = _relu_signature(rng, (NUM_EVENT_CLASSES, AUDIO_DIM), g_a, cfg.audio_share, sp_a)
        sig_a *= frame_norm / np.linalg.norm(sig_a, axis=-1, keepdims=True)  # norm of a real frame
        self.visual_signatures, self.audio_signatures = sig_v.astype(np.float32), sig_a.astype(np.float32)

        # object sprites (K, V, 36 cells, C): signature x per-channel lognormal jitter x cell weight;
        # an object of h x w cells shows the first h * w cells of its variant
        Vv, cells = self.N_VISUAL_VARIANTS, self.MAX_SIDE * self.MAX_SIDE
        jit = np.exp(0.35 * rng.standard_normal((NUM_EVENT_CLASSES, Vv, cells, C)) - 0.06)
        w = rng.uniform(0.5, 1.0, (NUM_EVENT_CLASSES, Vv, cells, 1))
        sprites = sig_v[:, None, None, :] * jit * w * (cells / w.sum(2, keepdims=True))
        self.sprites = np.ascontiguousarray(sprites, dtype=np.float32)
        Va = self.N_AUDIO_VARIANTS
        jit_a = np.exp(0.3 * rng.standard_normal((NUM_EVENT_CLASSES, Va, AUDIO_DIM)) - 0.045)
        self.sounds = np.ascontiguousarray(sig_a[:, None, :] * jit_a, dtype=np.float32)

        # scene textures: 3 materials mixed by smooth random fields over a 9x9 map, RMS 1 per cell
        n = self.N_SCENES
        mats = _rms_normalize(np.maximum(rng.standard_normal((n, 3, C)) - 0.524, 0.0))
        yy, xx = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
        freq = rng.uniform(0.2, 0.9, (n, 3, 2))
        phase = rng.uniform(0, 2 * np.pi, (n, 3, 2))
        field = np.sin(freq[..., 0, None, None] * yy + phase[..., 0, None, None]) + np.sin(
            freq[..., 1, None, None] * xx + phase[..., 1, None, None]
        )  # (n, 3, S, S)
        wts = np.exp(1.5 * field)
        wts /= wts.sum(1, keepdims=True)
        scene = np.einsum("nmyx,nmc->nyxc", wts, mats) * rng.uniform(0.8, 1.2, (n, S, S, 1))
        scene = _rms_normalize(scene)
        self.scenes = np.ascontiguousarray(scene.reshape(n * S * S, C), dtype=np.float32)
        # index of each 7x7 crop's cells for pans (dy, dx) in {0,1,2}^2: (3, 3, P)
        r = np.arange(GRID)
        self._pan_idx = np.array(
            [[((r[:, None] + dy) * S + (r[None, :] + dx)).reshape(-1) for dx in range(3)] for dy in range(3)]
        )

        # visual noise tape: rows of sparse ReLU noise with a lognormal per-row amplitude
        rows = 2048 if C <= 512 else 1024
        tape = np.maximum(rng.standard_normal((rows, C)) - 0.524, 0.0)
        tape = _rms_normalize(tape) * np.exp(0.5 * rng.standard_normal((rows, 1)) - 0.125)
        self.noise_tape = np.ascontiguousarray(tape * cfg.noise_rms, dtype=np.float32)

        # other members of each category's visual / audio group
        cats = np.arange(NUM_EVENT_CLASSES)
        self._same_group = tuple(
            tuple([int(c) for c in np.flatnonzero((g == g[k]) & (cats != k))] for k in cats)
            for g in (VISUAL_GROUP_OF, AUDIO_GROUP_OF)
        )
        self._roll_idx = (np.arange(T)[None, :] - np.arange(T)[:, None]) % T  # row r: shift by r

    @property
    def bank_nbytes(self) -> int:
        return sum(a.nbytes for a in (self.sprites, self.sounds, self.scenes, self.noise_tape, self.real_audio))

    # ---------------------------------------------------------------- composition
    def _draws(self, stream: int, index: int) -> _Draws:
        n = 160 + 72 * (self.cfg.max_distractors + 1)
        return _Draws(uniforms(self.seed, stream, index, n))

    def _extents(self, u: _Draws, n: int) -> np.ndarray:
        """(n, 2) object heights and widths in cells: area log-normal around the median, random aspect."""
        cfg, m = self.cfg, self.MAX_SIDE
        z = (u.take(3 * n).reshape(n, 3).sum(1) - 1.5) * 2.0  # Irwin-Hall: mean 0, sd 1, within +-3
        area = np.clip(cfg.object_area_median * 2.0 ** (cfg.object_area_log2_sd * z), 2.0, m * m)
        aspect = np.exp(cfg.object_aspect * (2.0 * u.take(n) - 1.0))
        h = np.clip(np.rint(np.sqrt(area * aspect)), 1, m)
        w = np.clip(np.rint(area / h), 1, m)
        return np.stack([h, w], 1).astype(np.int64)

    def _other(self, u: _Draws, k: int, modality: int, exclude: list[int]) -> int:
        """A category not k and not in `exclude`: from k's (0 visual / 1 audio) group with
        probability p_same_group (when it has an allowed member), else uniformly."""
        same_group, pick = u.one(), u.one()
        if same_group < self.cfg.p_distractor_same_group:
            same = [c for c in self._same_group[modality][k] if c not in exclude]
            if same:
                return int(same[int(pick * len(same))])
        allowed = [c for c in range(NUM_EVENT_CLASSES) if c != k and c not in exclude]
        return allowed[int(pick * len(allowed))]

    def _compose(
        self, u: _Draws, k: int, visible: np.ndarray, audible: np.ndarray, real_audio: np.ndarray, latent: dict | None
    ):
        """Features of a video whose own category is k, its object shown where ``visible`` (T,)
        and its sound played where ``audible`` (T,), over the real background audio (T, A).
        Fills ``latent`` (when given) with what was drawn."""
        cfg, C = self.cfg, self.channels
        # scene crop (the camera pans by <= 1 cell per segment) + a window of the noise tape
        scene = int(u.one() * self.N_SCENES) * self.SCENE * self.SCENE
        steps = (u.take(2 * T) * 3).astype(np.int64).reshape(T, 2) - 1
        pan = np.minimum(np.maximum((u.take(2) * 3).astype(np.int64) + steps.cumsum(0), 0), 2)  # (T, 2) crop offset
        vis = np.take(self.scenes, (scene + self._pan_idx[pan[:, 0], pan[:, 1]]).reshape(-1), axis=0)
        off = int(u.one() * (self.noise_tape.shape[0] - T * P + 1))
        vis += self.noise_tape[off : off + T * P]

        # objects: silent distractors of other categories (each visible in ~80% of the segments),
        # then the video's own object; each a rectangle of its own extent, drifting by <= 1 cell per segment
        n_d = int(u.one() * (cfg.max_distractors + 1))
        cats = []
        for _ in range(n_d):
            cats.append(self._other(u, k, 0, cats))
        cats.append(k)
        L = len(cats)
        shown = np.concatenate([u.take(n_d * T).reshape(n_d, T) < 0.8, visible[None]], 0)
        size = self._extents(u, L)  # (L, 2) height, width
        room = (GRID + 1 - size)[:, None, :]  # top-left rows/columns that keep the object inside
        start = (u.take(2 * L).reshape(L, 1, 2) * room).astype(np.int64)
        steps = (u.take(2 * L * T) * 3).astype(np.int64).reshape(L, T, 2) - 1
        pos = np.minimum(np.maximum(start + steps.cumsum(1), 0), room - 1)  # (L, T, 2) top-left cell
        lo, hi = cfg.object_strength
        jlo, jhi = cfg.object_jitter
        gain = (lo + (hi - lo) * u.take(L))[:, None] * (jlo + (jhi - jlo) * u.take(L * T).reshape(L, T))
        gain = gain.astype(np.float32)
        var = (u.take(L * T) * self.N_VISUAL_VARIANTS).astype(np.int64).reshape(L, T)
        for layer in range(L):
            ts = np.flatnonzero(shown[layer])
            if ts.size:
                h, w = size[layer]
                p = pos[layer, ts]
                offsets = (np.arange(h)[:, None] * GRID + np.arange(w)[None, :]).reshape(-1)
                rows = (ts[:, None] * P + (p[:, 0] * GRID + p[:, 1])[:, None] + offsets[None, :]).reshape(-1)
                spr = self.sprites[cats[layer], var[layer, ts], : h * w] * gain[layer, ts, None, None]
                vis[rows] += spr.reshape(-1, C)

        # audio: real background + the own sound where audible + maybe an off-screen sound of another category
        if latent is not None:
            latent.update(
                category=k,
                visible=visible,
                audible=audible,
                distractors=cats[:-1],
                distractor_visible=shown[:-1],
                positions=pos,
                sizes=size,
                audio_distractor=None,
                audio_distractor_segments=np.zeros(T, dtype=bool),
            )
        aud = real_audio.copy()
        lo, hi = cfg.sound_level
        jlo, jhi = cfg.sound_jitter
        level = (lo + (hi - lo) * u.one()) * (jlo + (jhi - jlo) * u.take(T))
        sv = (u.take(T) * self.N_AUDIO_VARIANTS).astype(np.int64)
        ts = np.flatnonzero(audible)
        aud[ts] += self.sounds[k, sv[ts]] * level[ts, None].astype(np.float32)
        if u.one() < cfg.p_audio_distractor:
            # never a category that is visible in this video: seen + heard would be an event
            d = self._other(u, k, 1, cats)
            lo, hi = cfg.audio_distractor_level
            level = (lo + (hi - lo) * u.one()) * (jlo + (jhi - jlo) * u.take(T))
            sv = (u.take(T) * self.N_AUDIO_VARIANTS).astype(np.int64)
            on = u.take(T) < 0.5
            ts = np.flatnonzero(on)
            aud[ts] += self.sounds[d, sv[ts]] * level[ts, None].astype(np.float32)
            if latent is not None:
                latent.update(audio_distractor=d, audio_distractor_segments=on)
        return vis.reshape(T, GRID, GRID, C), aud

    def _cases(self, u: _Draws) -> np.ndarray:
        """Per segment: 0 visible-but-silent, 1 audible-but-off-screen, 2 neither (T,) int."""
        p0, p1, _ = self.cfg.background_cases
        x = u.take(T)
        return (x >= p0).astype(np.int64) + (x >= p0 + p1)

    def sample(self, index: int, latent: bool = False):
        """Annotated sample ``index`` (0..4142): visual (T, H, W, C), audio (T, A), float32.
        With latent=True also a dict of what was drawn (visible, audible, distractors, ...)."""
        if not 0 <= index < self.meta.num_samples:
            raise IndexError(f"sample index {index} out of range [0, {self.meta.num_samples})")
        u = self._draws(STREAM_ANNOTATED, index)
        k = int(self.meta.video_labels[index])
        event = self.meta.segment_labels[index] != BACKGROUND
        case = self._cases(u)
        # noise floor: a real background recording (random video, random circular time shift)
        j = int(u.one() * self.meta.num_noisy)
        real = self.real_audio[j][self._roll_idx[int(u.one() * T)]]  # circular shift in time
        info = {} if latent else None
        out = self._compose(u, k, event | (case == 0), event | (case == 1), real, info)
        return (*out, info) if latent else out

    def noisy_sample(self, j: int, latent: bool = False):
        """Background-only video j (0..177): its own real VGGish audio, synthetic visuals, and in
        some segments a visible-but-silent object or an off-screen sound (never both at once)."""
        if not 0 <= j < self.meta.num_noisy:
            raise IndexError(f"background video index {j} out of range [0, {self.meta.num_noisy})")
        u = self._draws(STREAM_NOISY, j)
        k = int(u.one() * NUM_EVENT_CLASSES)
        case = self._cases(u)
        info = {} if latent else None
        out = self._compose(u, k, case == 0, case == 1, self.real_audio[j], info)
        return (*out, info) if latent else out


class SyntheticAVE(Dataset):
    """One split of synthetic AVE. Items: visual (T, H, W, C) float32, audio (T, A) float32,
    segment labels (T,) int64 (28 = background), video label () int64 (28 = background video)."""

    def __init__(self, generator: SyntheticAVEGenerator, split: str, setting: str = "supervised"):
        meta = generator.meta
        if split not in meta.orders:
            raise ValueError(f"split must be one of {list(meta.orders)}, got {split!r}")
        if setting not in ("supervised", "weak"):
            raise ValueError(f"setting must be 'supervised' or 'weak', got {setting!r}")
        self.generator, self.split, self.setting = generator, split, setting
        order = meta.orders[split]
        # items: (stream, index); weak train adds the background-only videos
        items = [np.stack([np.full_like(order, STREAM_ANNOTATED), order], 1)]
        if setting == "weak" and split == "train":
            j = np.arange(meta.num_noisy, dtype=np.int64)
            items.append(np.stack([np.full_like(j, STREAM_NOISY), j], 1))
        self.items = np.concatenate(items)
        annotated = self.items[:, 0] == STREAM_ANNOTATED
        idx = np.where(annotated, self.items[:, 1], 0)
        seg = np.where(annotated[:, None], meta.segment_labels[idx], BACKGROUND)
        vid = np.where(annotated, meta.video_labels[idx], BACKGROUND)
        self.segment_labels = torch.from_numpy(np.ascontiguousarray(seg, dtype=np.int64))
        self.video_labels = torch.from_numpy(np.ascontiguousarray(vid, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        stream, idx = self.items[i]
        g = self.generator
        vis, aud = g.sample(int(idx)) if stream == STREAM_ANNOTATED else g.noisy_sample(int(idx))
        return (
            torch.from_numpy(vis),
            torch.from_numpy(aud),
            self.segment_labels[i].clone(),
            self.video_labels[i].clone(),
        )
