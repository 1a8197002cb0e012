"""Release loader: validation errors (file, key, found, expected), labels, lazy HDF5 under workers.

Axis legend: N samples, M background videos, T=10 segments, 7x7 grid, C channels, A=128, K=29.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from examples.ave.data import AVEDataError, ReleaseAVE, build_datasets

N, M = 12, 1  # the export takes 12 videos: train 10, val 1, test 1 (and 1 background video)




def _rewrite(path, key, array):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)


def _read(path, key="avadataset"):
    with h5py.File(path, "r") as f:
        return f[key][()]


def _raises(root, *needles, setting="supervised", features="vgg19", **kw):
    with pytest.raises(AVEDataError) as e:
        build_datasets(root, setting=setting, features=features, **kw)
    msg = str(e.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_valid_release_loads(release):
    for setting in ("supervised", "weak"):
        ds = build_datasets(release, setting=setting)
        assert {k: len(v) for k, v in ds.items()} == {"train": 10 + M * (setting == "weak"), "val": 1, "test": 1}
        vis, aud, seg, vid = ds["train"][0]
        assert vis.shape == (10, 7, 7, 512) and vis.dtype == torch.float32
        assert aud.shape == (10, 128) and aud.dtype == torch.float32
        assert seg.dtype == torch.int64 and vid.dtype == torch.int64 and vid.shape == ()
    weak = build_datasets(release, setting="weak")["train"]
    _, _, seg, vid = weak[len(weak) - 1]
    assert int(vid) == 28 and (seg == 28).all()


@pytest.mark.parametrize(
    "name", ["visual_feature.h5", "audio_feature.h5", "train_order.h5", "val_order.h5", "test_order.h5"]
)
def test_a_missing_file_is_named(copy, name):
    (copy / name).unlink()
    _raises(copy, name, "not found")


@pytest.mark.parametrize(
    "name", ["mil_labels.h5", "labels_noisy.h5", "visual_feature_noisy.h5", "audio_feature_noisy.h5"]
)
def test_missing_weak_file(copy, name):
    (copy / name).unlink()
    build_datasets(copy, setting="supervised")  # not needed there
    _raises(copy, name, "not found", setting="weak")


def test_a_missing_dataset_key_is_named_with_the_keys_found(copy):
    _rewrite(copy / "audio_feature.h5", "features", np.zeros((N, 10, 128), np.float32))
    _raises(copy, "audio_feature.h5", "no dataset 'avadataset'", "['features']")
    _rewrite(copy / "val_order.h5", "avadataset", np.arange(1))
    _rewrite(copy / "audio_feature.h5", "avadataset", np.zeros((N, 10, 128), np.float32))
    _raises(copy, "val_order.h5", "no dataset 'order'", "['avadataset']")


def test_a_wrong_shape_is_named_with_the_expected_one(copy):
    _rewrite(copy / "audio_feature.h5", "avadataset", np.zeros((N, 10, 64), np.float32))
    _raises(copy, "audio_feature.h5", "'avadataset'", f"({N}, 10, 64)", "(N, 10, 128)")
    _rewrite(copy / "audio_feature.h5", "avadataset", np.zeros((N, 10, 128), np.float32))
    _rewrite(copy / "visual_feature.h5", "avadataset", np.zeros((N, 10, 49, 512), np.float32))
    _raises(copy, "visual_feature.h5", f"({N}, 10, 49, 512)", "(N, 10, 7, 7, 512)")


def test_wrong_backbone_names_the_right_one(release):
    msg = _raises(release, "visual_feature.h5", f"({N}, 10, 7, 7, 512)", "(N, 10, 7, 7, 2048)", features="resnet151")
    assert "features='vgg19'" in msg


def test_an_integer_feature_file_is_refused_naming_its_dtype(copy):
    _rewrite(copy / "audio_feature.h5", "avadataset", np.zeros((N, 10, 128), np.int32))
    _raises(copy, "audio_feature.h5", "int32", "float32 or float64")


def test_feature_files_of_different_sample_counts_are_refused(copy):
    _rewrite(copy / "audio_feature.h5", "avadataset", np.zeros((N - 1, 10, 128), np.float32))
    _raises(copy, "audio_feature.h5", f"holds {N - 1} samples", f"expected {N}", "visual_feature.h5")


def test_disagreeing_counts_labels_and_weak_files(copy):
    _rewrite(copy / "labels.h5", "avadataset", np.zeros((N + 1, 10, 29), np.float32))
    _raises(copy, "labels.h5", f"({N + 1}, 10, 29)", f"({N}, 10, 29)")
    (copy / "labels.h5").unlink()  # optional: fine without it
    build_datasets(copy)
    _rewrite(copy / "mil_labels.h5", "avadataset", np.zeros((N + 2, 29), np.float32))
    _raises(copy, "mil_labels.h5", f"holds {N + 2} samples", f"expected {N}", setting="weak")


def test_disagreeing_counts_noisy(copy):
    a = _read(copy / "audio_feature_noisy.h5")
    _rewrite(copy / "audio_feature_noisy.h5", "avadataset", np.concatenate([a, a]))
    _raises(
        copy, "audio_feature_noisy.h5", f"holds {2 * M} samples", f"expected {M}", "labels_noisy.h5", setting="weak"
    )


def test_order_index_out_of_range(copy):
    _rewrite(copy / "val_order.h5", "order", np.array([N], dtype=np.int64))
    _raises(copy, "val_order.h5", "'order'", f"index {N}", f"[0, {N})")
    _rewrite(copy / "val_order.h5", "order", np.array([-1], dtype=np.int64))
    _raises(copy, "val_order.h5", "index -1")


def test_order_overlap_and_float_order(copy):
    test = _read(copy / "test_order.h5", "order")
    _rewrite(copy / "val_order.h5", "order", test)
    _raises(copy, "val_order.h5", "test_order.h5", "disjoint")
    _rewrite(copy / "val_order.h5", "order", test.astype(np.float64))
    _raises(copy, "val_order.h5", "float64", "integer")


def test_mil_labels_disagree(copy):
    mil = _read(copy / "mil_labels.h5")
    mil = np.roll(mil, 1, axis=1)
    _rewrite(copy / "mil_labels.h5", "avadataset", mil)
    _raises(copy, "mil_labels.h5", "row 0", "agree", setting="weak")


def test_not_hdf5_and_not_a_directory(copy):
    (copy / "audio_feature.h5").write_text("not hdf5")
    _raises(copy, "audio_feature.h5", "HDF5")
    _raises(copy / "nowhere", "not a directory")


def test_folder_annotations_win_and_labels_h5_is_the_fallback(copy):
    """Annotations.txt in the directory wins; without it the shipped one (4143 rows) does not match
    N=12, so labels come from labels.h5 ('auto') or an error names both counts ('annotations')."""
    ref = build_datasets(copy)["train"]
    labels = _read(copy / "labels.h5")
    labels[0] = np.eye(29, dtype=np.float32)[[3] * 10]  # sample 0 now disagrees with the annotations
    _rewrite(copy / "labels.h5", "avadataset", labels)
    ds = build_datasets(copy)["train"]
    assert torch.equal(ds.segment_labels, ref.segment_labels)  # annotations preferred
    assert ds.label_source == "annotations" and ds.label_disagreements == [0] and ref.label_disagreements == []
    file_ds = build_datasets(copy, labels="file")["train"]
    (i,) = np.flatnonzero(file_ds.items[:, 1] == 0)  # new sample 0 is a train sample
    assert (file_ds.segment_labels[i] == 3).all() and int(file_ds.video_labels[i]) == 3
    assert not torch.equal(file_ds.segment_labels[i], ref.segment_labels[i])
    others = np.arange(len(ref)) != i
    assert torch.equal(file_ds.segment_labels[others], ref.segment_labels[others])
    (copy / "Annotations.txt").unlink()
    auto = build_datasets(copy)["train"]
    assert torch.equal(auto.segment_labels, file_ds.segment_labels)
    _raises(copy, "Annotations.txt", "holds 4143 samples", f"expected {N}", labels="annotations")
    (copy / "labels.h5").unlink()
    _raises(copy, "Annotations.txt", "4143", f"expected {N}")


def test_float64_release_is_cast(copy):
    v = _read(copy / "visual_feature.h5")
    _rewrite(copy / "visual_feature.h5", "avadataset", v.astype(np.float64))
    ds = build_datasets(copy)["val"]
    vis = ds[0][0]
    assert vis.dtype == torch.float32
    assert np.array_equal(vis.numpy(), v[ds.items[0, 1]])


def test_lazy_open_with_workers(release):
    ds = build_datasets(release, setting="weak")["train"]
    assert isinstance(ds, ReleaseAVE) and not ds.is_open  # validation closed everything
    pickle.dumps(ds)
    direct = [ds[i] for i in range(len(ds))]  # opens in this process
    assert ds.is_open
    clone = pickle.loads(pickle.dumps(ds))  # open handles are not pickled
    assert not clone.is_open and clone._handles is None
    ds.close()
    assert not ds.is_open
    got = []
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False, persistent_workers=False)
    for _ in range(2):  # two epochs: workers reopen
        got = [b for b in loader]
    assert not ds.is_open  # the workers opened their own handles; the main process did not
    cat = [torch.cat([b[k] for b in got]) for k in range(4)]
    for k in range(4):
        assert torch.equal(cat[k], torch.stack([d[k] for d in direct]))
    # forked worker after the parent opened: the pid check makes the child reopen
    ds[0]
    assert ds.is_open
    got2 = [b for b in DataLoader(ds, batch_size=4, num_workers=2)]
    assert torch.equal(torch.cat([b[0] for b in got2]), cat[0])


def test_reopens_in_a_new_process(release):
    """Handles belong to the process that opened them: another pid (a forked worker) reopens."""
    import os

    ds = build_datasets(release)["val"]
    ds[0]
    first = ds._handles
    assert ds._pid == os.getpid()
    ds._pid = -1  # as seen from a forked child
    assert not ds.is_open
    ds[0]
    assert ds._handles is not first and ds._pid == os.getpid()


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_an_empty_split_is_valid_and_refused_where_rows_are_needed(copy, split):
    from examples.ave.data.extracted import require_rows

    _rewrite(copy / f"{split}_order.h5", "order", np.zeros(0, dtype=np.int64))
    datasets = build_datasets(copy)
    assert len(datasets[split]) == 0 and all(len(d) for s, d in datasets.items() if s != split)
    with pytest.raises(AVEDataError, match=f"the {split} split holds no rows \\({split}_order.h5 is empty\\): "
                                           "evaluate needs at least one; this folder's rows are in "):
        require_rows(datasets[split], split, "evaluate")


ONE_HOT_ROWS = [
    (np.eye(29)[3] + np.eye(29)[5], "it has 2 ones"),
    (np.zeros(29), "it has 0 ones"),
    (np.eye(29)[3] * 0.5, "the value 0.5"),
    (np.where(np.eye(29)[28] > 0, np.nan, 0.0), "the value nan"),
    (np.eye(29)[28] * -1, "the value -1.0"),
]


@pytest.mark.parametrize("row, found", ONE_HOT_ROWS, ids=["two-ones", "no-one", "half", "nan", "minus-one"])
@pytest.mark.parametrize("source", ["auto", "file"])
def test_segment_labels_must_be_one_hot(copy, row, found, source):
    labels = _read(copy / "labels.h5")
    labels[4, 6] = row
    _rewrite(copy / "labels.h5", "avadataset", labels)
    _raises(copy, "labels.h5", "row [4, 6]", "[sample, segment]", found, "a class in 0..28 (28 = background)",
            labels=source)


@pytest.mark.parametrize("row, found", ONE_HOT_ROWS[:3], ids=["two-ones", "no-one", "half"])
def test_video_labels_must_be_one_hot(copy, row, found):
    mil = _read(copy / "mil_labels.h5")
    mil[2] = row
    _rewrite(copy / "mil_labels.h5", "avadataset", mil)
    build_datasets(copy)  # the supervised setting does not read it
    _raises(copy, "mil_labels.h5", "row [2]", found, "0..28", setting="weak")


def test_background_videos_must_be_labelled_background(copy):
    noisy = _read(copy / "labels_noisy.h5")
    noisy[0] = np.eye(29)[5]
    _rewrite(copy / "labels_noisy.h5", "avadataset", noisy)
    _raises(copy, "labels_noisy.h5", "row 0 says class 5", "expected 28 (background)", setting="weak")
    noisy[0] = np.eye(29)[28] * 2
    _rewrite(copy / "labels_noisy.h5", "avadataset", noisy)
    _raises(copy, "labels_noisy.h5", "row [0]", "the value 2.0", setting="weak")
