"""Run folders of the CMRAN example: never overwrite a run by accident, refuse unusable --out paths
before any work, clean the leftovers of killed writes, stop on Ctrl-C with one line that says how
to resume, write files with the user's umask.

Runs go through ``python -m examples.cmran`` 's ``main`` in-process, on the first 8 videos of each
split, batch 4, 1 or 2 steps per epoch (as in test_cmran_train.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

import examples.ave.train as train_module
import examples.ave.trainer as trainer_module
from examples.ave.checkpoint import RUN_FILES, atomic_write, load_checkpoint, remove_stale_temp_files, save_checkpoint
from examples.cmran.__main__ import main as cli

pytestmark = pytest.mark.xdist_group("cmran_train")

TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]
SEED_MAX = 2**63 - 1
ROOT = Path(__file__).resolve().parents[1]


def no_training(monkeypatch):
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "two"
    assert cli(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


def dead_pid() -> int:
    """A PID no process can have (above the kernel's limit)."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        return 2**22 + 1


# ---- never overwrite a run ----------------------------------------------------------------------

@pytest.mark.parametrize("name", RUN_FILES)
def test_a_fresh_train_refuses_a_folder_holding_any_run_file(capsys, tmp_path, monkeypatch, name):
    no_training(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_bytes(b"the user's own file\n")
    code, _, err = run(capsys, "train", *TINY, "--out", out)
    assert code == 2 and "already holds a run" in err and name in err and "--overwrite" in err
    assert (out / name).read_bytes() == b"the user's own file\n"
    if name != "last.pt":  # nothing to resume: the message does not suggest --resume
        assert "--resume" not in err.strip().splitlines()[-1]


def test_resume_cannot_shorten_a_run(capsys, tmp_path, two_epochs):
    before = {n: (two_epochs / n).read_bytes() for n in ("config.json", "result.json", "metrics.jsonl")}
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", two_epochs, "--resume")
    assert code == 2 and "--epochs 1 is below the 2 epochs" in err
    assert {n: (two_epochs / n).read_bytes() for n in before} == before


def test_resuming_a_data_directory_run_without_data_says_data_is_missing(capsys, tmp_path, two_epochs):
    data_dir = tmp_path / "AVE"
    data_dir.mkdir()
    ckpt = load_checkpoint(two_epochs / "last.pt")
    ckpt["model_config"] = ckpt["model_config"].to_dict()
    ckpt["train_config"] = {**ckpt["train_config"].to_dict(), "data": str(data_dir), "data_seed": None}
    save_checkpoint(tmp_path / "dir_run.pt", ckpt)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", tmp_path / "out", "--resume",
                       tmp_path / "dir_run.pt")
    assert code == 1 and "--data is missing" in err and f"pass --data {data_dir}" in err
    assert "data_seed" not in err
    # and the other way round: a synthetic run resumed on a data directory
    code, _, err = run(capsys, "train", *TINY, "--data", data_dir, "--epochs", "3", "--out", tmp_path / "out2",
                       "--resume", two_epochs / "last.pt")
    assert code == 1 and "trained on synthetic data" in err


# ---- --out and seeds are checked before any work -----------------------------------------------

def _read_only_dir(tmp_path: Path, monkeypatch) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for candidate in (ro, Path("/proc/sys")):  # root writes anywhere, but not into a read-only file system
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    # root on a machine without a read-only directory: let ro answer as it would to any other user
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == ro else access(p, mode, **k))
    return ro


def _bad_outs(tmp_path: Path, monkeypatch) -> list[tuple[str, str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return [
        ("", "must name a directory"),
        (str(a_file), "is a file"),
        (str(a_file / "sub" / "run"), "lies under the file"),
        (str(_read_only_dir(tmp_path, monkeypatch) / "new_run"), "not writable"),
    ]


@pytest.mark.parametrize("case", range(4), ids=["empty", "file", "under-a-file", "not-writable"])
def test_an_unusable_out_is_refused_before_model_or_data(capsys, tmp_path, monkeypatch, two_epochs, case):
    import examples.ave.export as export_module
    import examples.ave.import_reference as import_module
    import examples.ave.predict as predict_module
    import examples.ave.visualize as visualize_module

    out, match = _bad_outs(tmp_path, monkeypatch)[case]
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(visualize_module, "load_trained_model", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setattr(export_module, "export_synthetic", lambda *a, **k: pytest.fail("export started"))
    monkeypatch.setattr(import_module, "read_reference_checkpoint", lambda *a, **k: pytest.fail("checkpoint read"))
    monkeypatch.setattr(predict_module, "load_for_inference", lambda *a, **k: pytest.fail("model loaded"))
    for argv in (["train", *TINY], ["visualize", "--checkpoint", two_epochs / "best.pt"], ["export-synthetic"],
                 ["import-reference", tmp_path / "ref.pth.tar", "--setting", "supervised"]):
        code, _, err = run(capsys, *argv, "--out", out)
        assert code == 2 and match in err and "Traceback" not in err, (argv[0], err)
    if out:  # predict writes a file into the folder --out names
        code, _, err = run(capsys, "predict", "--checkpoint", two_epochs / "best.pt", "--out", f"{out}/events.jsonl")
        assert code == 2 and match in err and "Traceback" not in err, ("predict", err)
    try:
        os.chmod(tmp_path / "ro", 0o755)
    except FileNotFoundError:
        pass


@pytest.mark.parametrize("argv", [["train", *TINY, "--seed"], ["train", *TINY, "--data-seed"],
                                  ["export-synthetic", "--seed"]], ids=["seed", "data-seed", "export-seed"])
def test_a_seed_beyond_64_bits_is_refused_with_the_range(capsys, tmp_path, monkeypatch, argv):
    import examples.ave.export as export_module

    no_training(monkeypatch)
    monkeypatch.setattr(export_module, "export_synthetic", lambda *a, **k: pytest.fail("export started"))
    code, _, err = run(capsys, *argv, SEED_MAX + 1, "--out", tmp_path / "out")
    assert code == 2 and f"[0, {SEED_MAX}]" in err and str(SEED_MAX + 1) in err
    assert not (tmp_path / "out").exists()


# ---- leftovers of killed writes -----------------------------------------------------------------

def test_stale_temporary_files_are_removed_when_a_run_starts(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [f".last.pt.{dead_pid()}-k2j4h5ab.tmp", ".best.pt.x7yq_31z.tmp",  # killed write; an older version's
             f".metrics.jsonl.{dead_pid()}-aaaa1111.tmp"]
    live = [f".config.json.{os.getppid()}-bbbb2222.tmp"]  # a writer that is still running (our parent)
    others = ["notes.tmp", ".last.pt.bak", f".train.log.{dead_pid()}-cccc3333.tmp"]  # not the run's files
    for name in stale + live + others:
        (out / name).write_bytes(b"partial")
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", out)
    assert code == 0, err
    left = {p.name for p in out.iterdir()}
    assert not left & set(stale)
    assert set(live + others) <= left
    assert set(RUN_FILES) <= left


def test_the_exporter_removes_its_stale_temporary_files(tmp_path):
    from examples.ave.export import export_synthetic

    out = tmp_path / "ave"
    out.mkdir()
    stale, live = f".visual_feature.h5.tmp-{dead_pid()}", f".audio_feature.h5.tmp-{os.getppid()}"
    for name in (stale, live, "keep.h5"):
        (out / name).write_bytes(b"partial")
    export_synthetic(out, num_videos=3, progress=False)
    assert not (out / stale).exists() and (out / live).exists() and (out / "keep.h5").exists()


def test_remove_stale_temp_files_matches_only_the_given_names(tmp_path):
    names = [f".a.h5.tmp-{dead_pid()}", f".a.h5.{dead_pid()}-abc.tmp", ".a.h5.abc.tmp", f".ab.h5.tmp-{dead_pid()}",
             ".a.h5", "a.h5.abc.tmp", f".a.h5.tmp-{dead_pid()}x"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    removed = {p.name for p in remove_stale_temp_files(tmp_path, ["a.h5"])}
    assert removed == set(names[:3])
    assert remove_stale_temp_files(tmp_path / "missing", ["a.h5"]) == []


# ---- Ctrl-C ------------------------------------------------------------------------------------

def _interrupt_save(monkeypatch, at_call: int):
    """save_checkpoint whose ``at_call``-th call is interrupted halfway through writing the file."""
    calls = []

    def save(path, state):
        calls.append(Path(path).name)
        if len(calls) < at_call:
            return save_checkpoint(path, state)

        def write(f):
            f.write(b"half a checkpoint")
            raise KeyboardInterrupt

        atomic_write(path, write)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    return calls


def _resume_command(err: str, marker: str) -> list[str]:
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err, err
    prefix = [sys.executable, "-m", "examples.cmran"]  # the interpreter that ran: works without the venv active
    argv = shlex.split(line.split(marker, 1)[1])
    assert argv[:3] == prefix, line
    return argv[3:]


def test_ctrl_c_inside_a_checkpoint_write_keeps_the_old_file_and_says_how_to_resume(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    # epoch 1 writes best.pt then last.pt; epoch 2's first write is interrupted
    calls = _interrupt_save(monkeypatch, at_call=3)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out)
    assert code == 130 and len(calls) == 3
    assert f"{out / 'last.pt'} holds epoch 1 of 3" in err
    argv = _resume_command(err, "resume with: ")
    assert argv[-1] == "--resume" and "--overwrite" not in argv
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and load_checkpoint(out / "best.pt")["epoch"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    monkeypatch.delenv("RANK", raising=False)
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_ctrl_c_before_the_first_checkpoint_says_how_to_start_again(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupt_save(monkeypatch, at_call=1)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", out)
    assert code == 130 and "holds no last.pt" in err
    argv = _resume_command(err, "start again with: ")
    assert argv[-1] == "--overwrite" and "--resume" not in argv
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
    monkeypatch.undo()
    code, _, err = run(capsys, *argv)
    assert code == 0, err


def test_ctrl_c_of_a_resume_into_another_folder(capsys, tmp_path, monkeypatch, two_epochs):
    out = tmp_path / "elsewhere"
    _interrupt_save(monkeypatch, at_call=1)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out, "--resume", two_epochs / "last.pt")
    assert code == 130 and "nothing new was saved" in err
    assert _resume_command(err, "resume with: ")[-2:] == ["--resume", str(two_epochs / "last.pt")]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_real_sigint_prints_one_line_and_exits_130(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None)
    with open(tmp_path / "stderr", "w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "examples.cmran", "train", *TINY, "--epochs", "1000", "--out", str(out)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        try:
            for line in proc.stdout:  # wait until epoch 1 is saved
                if line.startswith("epoch   1/"):
                    break
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=120)
        finally:
            proc.kill()
        stderr.seek(0)
        err = stderr.read()
    assert proc.returncode == 130, err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not ln.lstrip().startswith("epoch ")]
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "Traceback" not in err, err
    assert "--resume" in lines[0] and load_checkpoint(out / "last.pt")["epoch"] >= 1


# ---- permissions and strict JSON ---------------------------------------------------------------

@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_run_files_honour_the_umask(capsys, tmp_path, umask):
    umask(0o022)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", out)
    assert code == 0, err
    assert {n: oct(os.stat(out / n).st_mode & 0o777) for n in RUN_FILES} == {n: "0o644" for n in RUN_FILES}
    umask(0o077)
    atomic_write(tmp_path / "private.json", lambda f: f.write(b"{}"))
    assert os.stat(tmp_path / "private.json").st_mode & 0o777 == 0o600
