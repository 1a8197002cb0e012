"""Synthetic AVE: determinism, layouts, labels against the annotation file, splits, mechanisms.

Axis legend: T=10 segments, 7x7 grid, C visual channels, A=128 audio channels.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from examples.ave.data import (
    BACKGROUND,
    NUM_EVENT_CLASSES,
    VISUAL_DIMS,
    SyntheticAVEGenerator,
    build_datasets,
    load_meta,
)
from examples.ave.data.synthetic import AUDIO_GROUP_OF, VISUAL_GROUP_OF, SyntheticConfig, uniforms

META = Path(__file__).resolve().parents[1] / "examples" / "ave" / "data" / "meta"
PROBE = [0, 1, 26, 1000, 2500, 4142]  # 26: the video annotated 0..0 (no event segment)


@pytest.fixture(scope="module")
def gen():
    return SyntheticAVEGenerator(seed=0, features="vgg19")


@pytest.fixture(scope="module")
def splits():
    return build_datasets("synthetic", setting="weak", features="vgg19", seed=0)


def _annotations_by_hand():
    """Independent parse of the shipped Annotations.txt: (segment labels, video labels)."""
    cats = (META / "categories.txt").read_text().splitlines()
    rows = (META / "Annotations.txt").read_text().splitlines()[1:]
    seg = np.full((len(rows), 10), 28)
    vid = np.zeros(len(rows), dtype=int)
    for i, r in enumerate(rows):
        c, _, _, s, e = r.split("&")
        vid[i] = cats.index(c)
        for t in range(int(s), int(e)):
            seg[i, t] = vid[i]
    return seg, vid


def test_the_task_has_28_events_background_28_and_two_feature_widths():
    assert NUM_EVENT_CLASSES == 28 and BACKGROUND == 28
    assert VISUAL_DIMS == {"vgg19": 512, "resnet151": 2048}


def test_uniforms_deterministic_and_uniform():
    a, b = uniforms(0, 0, 5, 4000), uniforms(0, 0, 5, 4000)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, uniforms(1, 0, 5, 4000)) and not np.array_equal(a, uniforms(0, 1, 5, 4000))
    assert a.min() >= 0 and a.max() < 1 and abs(a.mean() - 0.5) < 0.02
    assert np.histogram(a, 10, (0, 1))[0].min() > 300


def test_same_seed_same_bytes_different_seed_differs(gen):
    other = SyntheticAVEGenerator(seed=0, features="vgg19")
    seed1 = SyntheticAVEGenerator(seed=1, features="vgg19")
    for i in PROBE:
        v0, a0 = gen.sample(i)
        v1, a1 = other.sample(i)
        assert v0.tobytes() == v1.tobytes() and a0.tobytes() == a1.tobytes()
        v2, a2 = seed1.sample(i)
        assert not np.array_equal(v0, v2) and not np.array_equal(a0, a2)
    for j in (0, 177):
        assert gen.noisy_sample(j)[0].tobytes() == other.noisy_sample(j)[0].tobytes()
        assert not np.array_equal(gen.noisy_sample(j)[0], seed1.noisy_sample(j)[0])
    # different samples differ; repeated calls are identical
    assert not np.array_equal(gen.sample(0)[0], gen.sample(1)[0])
    assert gen.sample(7)[0].tobytes() == gen.sample(7)[0].tobytes()


def test_pickled_generator_rebuilds_identical_bank(gen):
    clone = pickle.loads(pickle.dumps(gen))
    assert len(pickle.dumps(gen)) < 10_000  # constructor arguments travel, not the bank
    for i in PROBE[:3]:
        assert gen.sample(i)[0].tobytes() == clone.sample(i)[0].tobytes()


@pytest.mark.parametrize("features", ["vgg19", "resnet151"])
def test_shapes_dtypes_nonnegative(features):
    ds = build_datasets("synthetic", setting="supervised", features=features, seed=3)
    C = VISUAL_DIMS[features]
    for split in ("train", "val", "test"):
        vis, aud, seg, vid = ds[split][5]
        assert vis.shape == (10, 7, 7, C) and vis.dtype == torch.float32
        assert aud.shape == (10, 128) and aud.dtype == torch.float32
        assert seg.shape == (10,) and seg.dtype == torch.int64
        assert vid.shape == () and vid.dtype == torch.int64
        assert vis.min() >= 0 and aud.min() >= 0 and vis.max() > 0 and aud.max() > 0
        assert torch.isfinite(vis).all() and torch.isfinite(aud).all()
    batch = next(iter(DataLoader(ds["train"], batch_size=4)))  # default collation
    assert [tuple(x.shape) for x in batch] == [(4, 10, 7, 7, C), (4, 10, 128), (4, 10), (4,)]


def test_labels_equal_annotations(splits):
    seg, vid = _annotations_by_hand()
    assert (seg[26] == 28).all()  # annotated 0..0: all background, video label still its category
    meta = load_meta()
    for split in ("train", "val", "test"):
        ds = splits[split]
        order = meta.orders[split]
        annotated = ds.items[:, 0] == 0
        assert np.array_equal(ds.items[annotated, 1], order)
        assert np.array_equal(ds.segment_labels[annotated].numpy(), seg[order])
        assert np.array_equal(ds.video_labels[annotated].numpy(), vid[order])
        # item-level check on a few rows
        for i in (0, len(order) - 1):
            _, _, s, v = ds[i]
            assert np.array_equal(s.numpy(), seg[order[i]]) and int(v) == vid[order[i]]


def test_splits_disjoint_and_complete(splits):
    meta = load_meta()
    sizes = {s: int((splits[s].items[:, 0] == 0).sum()) for s in ("train", "val", "test")}
    assert sizes == {"train": 3339, "val": 402, "test": 402}
    ids = np.concatenate([splits[s].items[splits[s].items[:, 0] == 0, 1] for s in ("train", "val", "test")])
    assert np.array_equal(np.sort(ids), np.arange(4143))
    # the weak train split adds the 178 background-only videos, labelled 28 everywhere
    tr = splits["train"]
    assert len(tr) == 3339 + 178 and len(splits["val"]) == 402 and len(splits["test"]) == 402
    noisy = tr.items[:, 0] == 1
    assert noisy.sum() == 178 and np.array_equal(tr.items[noisy, 1], np.arange(178))
    assert (tr.video_labels[noisy] == 28).all() and (tr.segment_labels[noisy] == 28).all()
    assert (tr.video_labels[~noisy] < 28).all()
    _, _, s, v = tr[len(tr) - 1]
    assert int(v) == 28 and (s == 28).all()
    sup = build_datasets("synthetic", setting="supervised")
    assert len(sup["train"]) == 3339 and meta.num_noisy == 178


def test_event_iff_visible_and_audible(gen):
    """The generator's latent state agrees with the labels, and every background case occurs."""
    meta = load_meta()
    cases = {"visible_silent": 0, "audible_offscreen": 0, "neither": 0}
    for i in range(0, 4143, 7):
        _, _, lat = gen.sample(i, latent=True)
        k = int(meta.video_labels[i])
        assert lat["category"] == k
        expected = np.where(lat["visible"] & lat["audible"], k, BACKGROUND)
        assert np.array_equal(expected, meta.segment_labels[i])
        bg = meta.segment_labels[i] == BACKGROUND
        cases["visible_silent"] += int((bg & lat["visible"]).sum())
        cases["audible_offscreen"] += int((bg & lat["audible"]).sum())
        cases["neither"] += int((bg & ~lat["visible"] & ~lat["audible"]).sum())
        # no category other than k is both visible and audible
        assert k not in lat["distractors"]
        assert lat["audio_distractor"] is None or lat["audio_distractor"] not in lat["distractors"] + [k]
    assert min(cases.values()) > 50, cases
    for j in range(0, 178, 5):  # background videos: the object is never seen and heard at once
        _, _, lat = gen.noisy_sample(j, latent=True)
        assert not (lat["visible"] & lat["audible"]).any()


def test_object_and_sound_are_where_the_latent_says(gen):
    """The own object's signature peaks at its cells when visible; its sound is louder when audible."""
    sig_v = gen.visual_signatures / np.linalg.norm(gen.visual_signatures, axis=1, keepdims=True)
    sig_a = gen.audio_signatures / np.linalg.norm(gen.audio_signatures, axis=1, keepdims=True)
    hits, score_on, score_off, a_on, a_off = 0, [], [], [], []
    for i in range(3, 4143, 41):
        vis, aud, lat = gen.sample(i, latent=True)
        k = lat["category"]
        cells = vis.reshape(10, 49, -1) @ sig_v[k]  # (T, P) projection on the own signature
        for t in range(10):
            if lat["visible"][t]:
                y, x = lat["positions"][-1, t]
                h, w = lat["sizes"][-1]
                hits += int(cells[t].argmax() in {(y + dy) * 7 + x + dx for dy in range(h) for dx in range(w)})
                score_on.append(cells[t].max())
            else:
                score_off.append(cells[t].max())
            (a_on if lat["audible"][t] else a_off).append(aud[t] @ sig_a[k])
    n_on = len(score_on)
    assert hits > 0.5 * n_on  # distractors of the same group can outscore the object sometimes
    assert np.mean(score_on) > np.mean(score_off) + 0.5
    assert np.mean(a_on) > np.mean(a_off) + 0.3


def test_confusable_groups_share_signature(gen):
    def cos(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    for sig, groups in ((gen.visual_signatures, VISUAL_GROUP_OF), (gen.audio_signatures, AUDIO_GROUP_OF)):
        c = cos(sig.astype(np.float64))
        same = (groups[:, None] == groups[None, :]) & ~np.eye(28, dtype=bool)
        diff = groups[:, None] != groups[None, :]
        assert c[same].mean() > c[diff].mean() + 0.2


def test_difficulty_zero_removes_distractors_and_higher_adds_noise_and_distractors():
    easy = SyntheticAVEGenerator(seed=0, difficulty=0.0)
    assert easy.cfg.max_distractors == 0 and easy.cfg.p_audio_distractor == 0 and not easy.noise_tape.any()
    hard = SyntheticConfig.from_difficulty(2.0)
    default = SyntheticConfig.from_difficulty(None)
    assert default == SyntheticConfig.from_difficulty(1.0)
    assert hard.noise_rms > default.noise_rms and hard.max_distractors > default.max_distractors
    assert hard.sound_level[1] < default.sound_level[1]
    _, _, lat = easy.sample(10, latent=True)
    assert lat["distractors"] == [] and lat["audio_distractor"] is None
    # same labels, different features
    d0 = build_datasets("synthetic", difficulty=0.0)["val"]
    d2 = build_datasets("synthetic", difficulty=2.0)["val"]
    assert torch.equal(d0[0][2], d2[0][2]) and not torch.equal(d0[0][0], d2[0][0])
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="difficulty"):
            SyntheticConfig.from_difficulty(bad)


def test_bad_features_setting_or_seed_raise_a_value_error_naming_it():
    with pytest.raises(ValueError, match="features"):
        build_datasets("synthetic", features="vgg16")
    with pytest.raises(ValueError, match="setting"):
        build_datasets("synthetic", setting="semi")
    with pytest.raises(ValueError, match="seed"):
        SyntheticAVEGenerator(seed=-1)
    g = SyntheticAVEGenerator(seed=0)
    with pytest.raises(IndexError):
        g.sample(4143)
    with pytest.raises(IndexError):
        g.noisy_sample(178)


def test_object_extents_are_rectangles_of_a_few_to_most_cells(gen):
    """Each object's extent: drawn once, inside the grid while it moves, median ~8 cells, 2..36 cells."""
    areas, square = [], []
    for i in range(1, 4143, 13):
        _, _, lat = gen.sample(i, latent=True)
        sizes, pos = lat["sizes"], lat["positions"]
        assert sizes.shape == (len(lat["distractors"]) + 1, 2)
        assert ((sizes >= 1) & (sizes <= 6)).all()
        assert (pos >= 0).all() and (pos + sizes[:, None, :] <= 7).all()
        areas += list(sizes.prod(1))
        square += list(sizes[:, 0] == sizes[:, 1])
    areas = np.array(areas)
    assert 6 <= np.median(areas) <= 12
    assert np.percentile(areas, 5) <= 3 and areas.max() >= 25 and areas.min() >= 2
    assert np.mean(square) < 0.7


def test_the_object_fills_its_rectangle(gen):
    """Where the own object is visible, every cell of its rectangle carries its signature."""
    sig = gen.visual_signatures / np.linalg.norm(gen.visual_signatures, axis=1, keepdims=True)
    inside, outside = [], []
    for i in range(5, 4143, 97):
        vis, _, lat = gen.sample(i, latent=True)
        proj = vis.reshape(10, 7, 7, -1) @ sig[lat["category"]]  # (T, 7, 7)
        h, w = lat["sizes"][-1]
        for t in np.flatnonzero(lat["visible"]):
            y, x = lat["positions"][-1, t]
            mask = np.zeros((7, 7), dtype=bool)
            mask[y:y + h, x:x + w] = True
            inside.append(proj[t][mask].mean())
            outside.append(proj[t][~mask].mean() if (~mask).any() else np.nan)
    assert np.nanmean(inside) > np.nanmean(outside) + 0.3
