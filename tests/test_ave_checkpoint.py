"""The one checkpoint reader (examples/ave/checkpoint.py ``read_torch_file``, issue 22 item 10): a file that is
not a checkpoint, given to any command that reads one, is refused saying what it is, and never with torch's
advice to load it with ``weights_only=False`` (which would run a stranger's code).
"""

from __future__ import annotations

import json
import pickle
import random
from fractions import Fraction

import pytest
import torch
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.checkpoint import CheckpointError

COMMANDS = {
    "evaluate": lambda ckpt, tmp: ["evaluate", "--checkpoint", ckpt],
    "predict": lambda ckpt, tmp: ["predict", "--checkpoint", ckpt, "--out", tmp / "events.jsonl"],
    "visualize": lambda ckpt, tmp: ["visualize", "--checkpoint", ckpt, "--out", tmp / "vis"],
    "import-reference": lambda ckpt, tmp: ["import-reference", ckpt, "--setting", "supervised", "--out", tmp / "ref"],
    "resume": lambda ckpt, tmp: ["train", "--epochs", "2", "--out", tmp / "run", "--resume", ckpt],
}
FILES = {
    "json": (lambda p: p.write_text(json.dumps({"model": "cmran", "epoch": 3})), "holds JSON text, not a checkpoint"),
    "random": (lambda p: p.write_bytes(b"\x01" + random.Random(22).randbytes(4095)),
               "is not a checkpoint: neither a zip archive"),
}


@pytest.mark.parametrize("kind", FILES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_that_is_no_checkpoint_is_named_for_what_it_is(capsys, tmp_path, command, kind):
    write, says = FILES[kind]
    ckpt = tmp_path / "model.pt"
    write(ckpt)
    code, _, err = run(capsys, *COMMANDS[command](ckpt, tmp_path))
    assert code == 1 and says in err and "Traceback" not in err, err
    assert "weights_only=False" not in err and "set to `False`" not in err and "False" not in err, err


def test_pickles_are_refused_without_running_them(tmp_path):
    from examples.ave.checkpoint import read_torch_file

    for obj, says in ((Fraction(1, 3), r"pickles Python objects \(fractions.Fraction\)"),
                      ({"a": 1}, "is a Python pickle, not a torch.save")):
        path = tmp_path / "x.pt"
        if isinstance(obj, dict):
            path.write_bytes(pickle.dumps(obj, protocol=4))
        else:
            torch.save({"payload": obj}, path)
        with pytest.raises(CheckpointError, match=says) as err:
            read_torch_file(path)
        assert "False" not in str(err.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        read_torch_file(tmp_path / "empty.pt")
