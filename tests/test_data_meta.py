"""Text files of a data directory (examples/ave/data/meta.py, issue 22 item 9): bytes that are not UTF-8 in
Annotations.txt or categories.txt are an error naming the file, the line and the byte, not a
UnicodeDecodeError traceback.
"""

from __future__ import annotations

import shutil

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.data import AVEDataError, build_datasets
from examples.ave.export import export_synthetic


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("ave") / "release"
    export_synthetic(root, num_videos=3, progress=False)
    return root


@pytest.mark.parametrize("name", ["Annotations.txt", "categories.txt"])
def test_bytes_that_are_not_utf8_are_named_by_file_line_and_byte(capsys, release, tmp_path, name):
    data = tmp_path / "data"
    shutil.copytree(release, data)
    lines = (data / name).read_bytes().split(b"\n")
    lines[2] = lines[2][:4] + b"\xff" + lines[2][4:]  # line 3, byte 5
    (data / name).write_bytes(b"\n".join(lines))
    offset = len(lines[0]) + len(lines[1]) + 2 + 5
    expected = (f"{data / name}: line 3, byte 5 (byte {offset} of the file, 0xff) is not UTF-8 (invalid start byte); "
                "expected ")
    with pytest.raises(AVEDataError) as err:
        build_datasets(data)
    assert str(err.value).startswith(expected)
    code, _, err = run(capsys, "train", "--data", data, "--epochs", "1", "--out", tmp_path / "run")
    assert code == 1 and f"error: {expected}" in err and "Traceback" not in err


def test_a_utf8_file_reads_as_before(tmp_path):
    from examples.ave.data.meta import read_text_lines

    (tmp_path / "t.txt").write_bytes("Église\r\nb\n".encode())
    assert read_text_lines(tmp_path / "t.txt", "text") == ["Église", "b"]
