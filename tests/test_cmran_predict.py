"""``predict``: events per video (category, start, end, mean relevance), checked against
``avattn.predict_segments`` on outputs the test controls.

Axis legend: b batch, t segments, k classes.
"""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
import torch
from cli_checks import one_thread  # noqa: F401  (the fixture acts where imported)

import avattn
from avattn import SupervisedOutput, WeakOutput
from examples.ave.config import TrainConfig
from examples.ave.data.meta import load_meta
from examples.ave.datasets import build_splits
from examples.ave.evaluate import load_trained_model
from examples.ave.import_reference import write_run
from examples.ave.predict import merge_events, predict_events
from examples.cmran.__main__ import main as cli
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

NAMES = [f"cat{k}" for k in range(28)] + ["background"]



def _events_by_groupby(labels, relevance, names):
    """The expected events, computed another way: itertools.groupby over (segment, label)."""
    out = []
    for label, run in itertools.groupby(enumerate(labels), key=lambda x: x[1]):
        ts = [t for t, _ in run]
        if label != 28:
            out.append({"category": names[label], "start": ts[0], "end": ts[-1] + 1,
                        "relevance": float(np.mean([relevance[t] for t in ts]))})
    return out


def _same_events(got, want):
    assert [(e["category"], e["start"], e["end"]) for e in got] == [(e["category"], e["start"], e["end"]) for e in want]
    for a, b in zip(got, want):
        assert a["relevance"] == pytest.approx(b["relevance"], abs=1e-6)


def test_merge_events_on_hand_made_sequences():
    rel = [0.1 * t for t in range(10)]
    assert merge_events([28] * 10, rel, NAMES) == []
    got = merge_events([28, 3, 3, 28, 3, 28, 28, 5, 5, 5], rel, NAMES)
    assert [(e["category"], e["start"], e["end"]) for e in got] == [("cat3", 1, 3), ("cat3", 4, 5), ("cat5", 7, 10)]
    assert [e["relevance"] for e in got] == pytest.approx([0.15, 0.4, 0.8])
    assert merge_events([7], [0.9], NAMES) == [{"category": "cat7", "start": 0, "end": 1, "relevance": 0.9}]


class _Stub(torch.nn.Module):
    """Outputs read straight off the audio features: s_t = audio[:, t, 0], class logits = audio[:, 0, 1:K+1]."""

    def __init__(self, weak: bool):
        super().__init__()
        self.weak = weak

    def forward(self, visual, audio):
        s = audio[..., 0]
        if not self.weak:
            return SupervisedOutput(s, audio[:, 0, 1:29])
        z = audio[:, 0, 1:30]
        logits = (torch.sigmoid(s)[:, :, None] * z[:, None]).max(1).values
        return WeakOutput(s, z, logits, torch.softmax(logits, -1))

    relevance = staticmethod(CMRAN.relevance)

    predict = staticmethod(CMRAN.predict)


@pytest.mark.parametrize("weak", [False, True])
def test_predict_events_agrees_with_predict_segments(weak):
    g = torch.Generator().manual_seed(0)
    n, t = 13, 10
    audio = torch.randn(n, t, 128, generator=g)
    audio[:, :, 0] = torch.where(torch.rand(n, t, generator=g) < 0.5, -1.0, 1.0) * torch.rand(n, t, generator=g)
    if weak:
        audio[3, 0, 1 + 28] = 100.0  # this video's category is background: no events at all
    data = [(torch.zeros(t, 1), audio[i], torch.zeros(t, dtype=torch.long), torch.tensor(0)) for i in range(n)]
    ids = [f"v{i}" for i in range(n)]
    positions = [12, 0, 3, 5, 7, 1, 2]
    records = predict_events(_Stub(weak), data, positions, ids, NAMES, split="test", device=torch.device("cpu"),
                             batch_size=4)
    assert [r["video_id"] for r in records] == [f"v{i}" for i in positions]
    k = 29 if weak else 28
    labels = avattn.predict_segments(audio[:, :, 0], audio[:, 0, 1:k + 1])
    relevance = torch.sigmoid(audio[:, :, 0])
    n_events = 0
    for r in records:
        i = r["index"]
        want = _events_by_groupby(labels[i].tolist(), relevance[i].tolist(), NAMES)
        _same_events(r["events"], want)
        n_events += len(want)
    assert n_events > 5  # the check saw events, not only background
    if weak:
        assert next(r for r in records if r["index"] == 3)["events"] == []


@pytest.mark.parametrize("weak", [False, True])
def test_non_finite_output_is_refused_naming_the_video(weak):
    from examples.ave.evaluate import NonFiniteOutputError

    t = 10
    audio = torch.rand(8, t, 128)
    audio[5, 3, 0] = float("nan")  # the event logit of one segment of video v5
    data = [(torch.zeros(t, 1), audio[i], torch.zeros(t, dtype=torch.long), torch.tensor(0)) for i in range(8)]
    ids = [f"v{i}" for i in range(8)]
    with pytest.raises(NonFiniteOutputError, match="video 'v5' \\(item 5 of the test split\\)"):
        predict_events(_Stub(weak), data, [0, 7, 5, 2], ids, NAMES, split="test", device=torch.device("cpu"),
                       batch_size=2)
    assert len(predict_events(_Stub(weak), data, [0, 7, 2], ids, NAMES, split="test",
                              device=torch.device("cpu"), batch_size=2)) == 3  # the other videos are fine


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder whose model is random, with relevance biases that make both events and background."""
    torch.manual_seed(0)
    cfg = CMRANConfig()
    model = CMRAN(cfg)
    with torch.no_grad():
        model.head.relevance.bias.fill_(0.3)
    out = tmp_path_factory.mktemp("run")
    write_run(out, cfg, model.state_dict(), TrainConfig(out=str(out)).resolve("supervised"), {"from": "test"})
    return out


def test_cli_on_synthetic_data_matches_the_model(run_folder, tmp_path, capsys):
    meta = load_meta()
    test_ids = [meta.annotations[i].video_id for i in meta.orders["test"]]
    chosen = [test_ids[4], test_ids[0], test_ids[17]]
    for suffix in ("jsonl", "csv"):
        path = tmp_path / f"events.{suffix}"
        assert cli(["predict", "--checkpoint", str(run_folder / "best.pt"), "--videos", ",".join(chosen),
                    "--out", str(path)]) == 0
        assert "events in 3 test videos" in capsys.readouterr().out
        if suffix == "jsonl":
            records = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            rows = list(csv.DictReader(path.open()))
            records = [{"video_id": v, "index": [4, 0, 17][chosen.index(v)],
                        "events": [{"category": r["category"], "start": int(r["start"]), "end": int(r["end"]),
                                    "relevance": float(r["relevance"])} for r in rows if r["video_id"] == v]}
                       for v in chosen]
        assert [r["video_id"] for r in records] == chosen
        model, ckpt = load_trained_model(str(run_folder / "best.pt"), torch.device("cpu"))
        dataset = build_splits(model.config, ckpt["train_config"])["test"]
        items = [dataset[r["index"]] for r in records]
        with torch.no_grad():
            out = model(torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items]))
        labels = avattn.predict_segments(out.event_logits, out.class_logits)
        names = meta.categories + ["background"]
        n_events = 0
        for j, r in enumerate(records):
            want = _events_by_groupby(labels[j].tolist(), torch.sigmoid(out.event_logits[j]).tolist(), names)
            _same_events(r["events"], want)
            n_events += len(want)
        assert n_events > 0


@pytest.mark.parametrize("argv, match", [
    (["--out", "events.txt"], "--out must end in .jsonl or .csv"),
    (["--out", "e.jsonl", "--videos", "not_a_video"], "--videos: ['not_a_video'] not in the test split"),
    (["--out", "e.jsonl", "--videos", ","], "--videos must list video ids"),
    (["--out", "e.jsonl/x.csv"], "is a file, expected a directory"),
])
def test_bad_options_are_refused(run_folder, tmp_path, capsys, argv, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "e.jsonl/x.csv" in argv:
        (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(SystemExit) as exc:
        cli(["predict", "--checkpoint", str(run_folder / "best.pt"), *argv])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err
    assert not [p for p in tmp_path.glob("e*") if p.stat().st_size]


def test_a_finished_run_prints_where_it_went_and_next_commands_that_parse(tmp_path):
    import shlex
    import sys
    from pathlib import Path

    from examples.ave.cli import build_parser
    from examples.ave.run_messages import next_steps

    out = tmp_path / "my runs" / "demo"
    text = next_steps(out)
    assert str(out / "best.pt") in text and str(out / "metrics.jsonl") in text
    python = [sys.executable, "-m", "examples.ave"]  # the interpreter that ran: works without the venv active
    commands = [shlex.split(line) for line in text.splitlines() if line.startswith("  ")]
    assert [c[:3] for c in commands] == [python] * 3
    commands = [c[3:] for c in commands]
    assert [c[0] for c in commands] == ["evaluate", "visualize", "predict"]
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert Path(args.checkpoint) == out / "best.pt"
    no_maps = [shlex.split(line)[3] for line in next_steps(out, has_maps=False).splitlines() if line.startswith("  ")]
    assert no_maps == ["evaluate", "predict"]  # e.g. AVEL's audio-only row: nothing for visualize to draw


def test_only_the_asked_split_is_built(run_folder, tmp_path, monkeypatch):
    import examples.ave.evaluate as evaluate_module

    built = []

    def recording(model_cfg, train_cfg, splits=("train", "val", "test")):
        built.append(tuple(splits))
        return build_splits(model_cfg, train_cfg, splits)

    monkeypatch.setattr(evaluate_module, "build_splits", recording)
    assert cli(["predict", "--checkpoint", str(run_folder / "best.pt"), "--split", "val",
                "--out", str(tmp_path / "e.jsonl")]) == 0
    assert built == [("val",)]


def test_visualize_names_categories_from_the_data_folder(run_folder, tmp_path, monkeypatch):
    """visualize titles its figures with the data set's categories.txt, as predict does."""
    import examples.ave.visualize as visualize_module

    names = [f"custom_{i}" for i in range(28)]
    (tmp_path / "categories.txt").write_text("\n".join(names) + "\n")

    class WithRoot(torch.utils.data.Dataset):  # the synthetic test split, as if read from tmp_path
        def __init__(self, inner):
            self.inner, self.root = inner, tmp_path

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            return self.inner[i]

    monkeypatch.setattr(visualize_module, "build_splits",
                        lambda *a, **k: {s: WithRoot(d) for s, d in build_splits(*a, **k).items()})
    seen = []
    monkeypatch.setattr(visualize_module, "plot_spatial", lambda path, spatial, truth, pred, n, title: seen.append(n))
    monkeypatch.setattr(visualize_module, "plot_relations", lambda *a, **k: None)
    assert cli(["visualize", "--checkpoint", str(run_folder / "best.pt"), "--num-videos", "1",
                "--out", str(tmp_path / "vis")]) == 0
    assert seen == [names + ["background"]]
