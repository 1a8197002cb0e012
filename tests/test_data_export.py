"""Export round trip: synthetic AVE written in the release layout reads back identically.

Axis legend: N samples, M background videos, T=10 segments, 7x7 grid, C channels, A=128, K=29.
"""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest
import torch

from examples.ave import export
from examples.ave.data import SyntheticAVEGenerator, build_datasets, load_meta

N = 20


@pytest.mark.parametrize("dtype,features", [("float64", "vgg19"), ("float32", "vgg19"), ("float32", "resnet151")])
def test_export_reads_back_as_the_generator_s_samples(tmp_path, dtype, features):
    n = N if features == "vgg19" else 6
    out = tmp_path / "ave"
    info = export.export_synthetic(
        out, num_videos=n, features=features, dtype=dtype, seed=5, difficulty=1.5, progress=False
    )
    meta = load_meta()
    # the exact release layout, with the declared dtypes
    C = 512 if features == "vgg19" else 2048
    M = info["num_noisy"]
    expect = {
        "visual_feature.h5": ((n, 10, 7, 7, C), dtype),
        "audio_feature.h5": ((n, 10, 128), dtype),
        "labels.h5": ((n, 10, 29), "float32"),
        "mil_labels.h5": ((n, 29), "float32"),
        "labels_noisy.h5": ((M, 29), "float32"),
        "visual_feature_noisy.h5": ((M, 10, 7, 7, C), dtype),
        "audio_feature_noisy.h5": ((M, 10, 128), dtype),
    }
    for name, (shape, dt) in expect.items():
        with h5py.File(out / name, "r") as f:
            assert list(f.keys()) == ["avadataset"]
            assert f["avadataset"].shape == shape and f["avadataset"].dtype == np.dtype(dt), name
    orig = np.array(info["original_indices"])
    assert np.all(np.diff(orig) > 0)  # original relative order kept
    orders = {}
    for s in ("train", "val", "test"):
        with h5py.File(out / f"{s}_order.h5", "r") as f:
            assert list(f.keys()) == ["order"]
            orders[s] = f["order"][()]
        # re-indexed: new index -> original sample of the right split
        assert set(orig[orders[s]]) <= set(meta.orders[s])
        assert len(orders[s]) >= 1
        lines = (out / f"{s}Set.txt").read_text().splitlines()
        assert lines == [meta.annotations[o].line() for o in orig[orders[s]]]
    assert np.array_equal(np.sort(np.concatenate(list(orders.values()))), np.arange(n))
    sizes = [len(orders[s]) for s in ("train", "val", "test")]
    assert sizes[0] > sizes[1] and sizes[0] > sizes[2]  # in proportion to 3339 / 402 / 402
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # atomic writes left nothing behind
    assert json.loads((out / "export_info.json").read_text())["seed"] == 5

    # read back with the release loader and compare with the generator, item by item
    gen = SyntheticAVEGenerator(seed=5, features=features, difficulty=1.5)
    seg_ref = meta.segment_labels
    for setting in ("supervised", "weak"):
        ds = build_datasets(out, setting=setting, features=features)
        for split in ("train", "val", "test"):
            for i in range(len(ds[split])):
                vis, aud, seg, vid = ds[split][i]
                kind, idx = ds[split].items[i]
                if kind == 0:
                    o = orig[idx]
                    v_ref, a_ref = gen.sample(int(o))
                    assert torch.equal(seg, torch.tensor(seg_ref[o])) and int(vid) == meta.video_labels[o]
                else:
                    v_ref, a_ref = gen.noisy_sample(info["noisy_indices"][idx])
                    assert int(vid) == 28 and (seg == 28).all()
                assert vis.dtype == torch.float32 and aud.dtype == torch.float32
                assert np.array_equal(vis.numpy(), v_ref) and np.array_equal(aud.numpy(), a_ref)
            if setting == "supervised":
                assert len(ds[split]) == len(orders[split])
        assert len(ds["train"]) == len(orders["train"]) + M * (setting == "weak")


def test_select_videos_full_and_proportional():
    meta = load_meta()
    orig, orders, noisy = export.select_videos(meta, None)
    assert np.array_equal(orig, np.arange(4143)) and len(noisy) == 178
    assert all(np.array_equal(orders[s], meta.orders[s]) for s in orders)
    orig, orders, noisy = export.select_videos(meta, 414)
    assert len(orig) == 414 and len(noisy) == 18
    assert [len(orders[s]) for s in ("train", "val", "test")] == [334, 40, 40]
    cats = meta.video_labels[orig[orders["train"]]]
    assert len(np.unique(cats)) == 28  # evenly spaced picks cover the categories
    with pytest.raises(ValueError, match="num-videos"):
        export.select_videos(meta, 2)


def test_export_synthetic_subcommand_writes_a_loadable_release(tmp_path, capsys):
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    args = p.parse_args(["--out", str(tmp_path / "x"), "--num-videos", "3", "--dtype", "float64", "--seed", "2"])
    assert args.features == "vgg19" and args.difficulty is None
    args.module = "examples.cmran"
    assert export.main(args) == 0
    assert "wrote 3 videos" in capsys.readouterr().out
    ds = build_datasets(tmp_path / "x", setting="weak")
    assert [len(ds[s]) for s in ("train", "val", "test")] == [2, 1, 1]


def test_a_folder_holding_files_the_export_would_replace_is_refused_without_overwrite(tmp_path, capsys):
    """Issue 22 item 3: another data set's feature files (no export_info.json) are never replaced silently."""
    from examples.cmran.__main__ import main as cli

    out = tmp_path / "theirs"
    out.mkdir()
    (out / "visual_feature.h5").write_bytes(b"someone else's features")
    (out / "notes.txt").write_text("kept\n")
    with pytest.raises(SystemExit) as exit_status:
        cli(["export-synthetic", "--out", str(out), "--num-videos", "3"])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and "already holds visual_feature.h5, which the export would replace" in err and "--overwrite" in err
    assert (out / "visual_feature.h5").read_bytes() == b"someone else's features"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "visual_feature.h5"]
    assert cli(["export-synthetic", "--out", str(out), "--num-videos", "3", "--overwrite"]) == 0
    assert len(build_datasets(out)["val"]) == 1 and (out / "notes.txt").read_text() == "kept\n"
