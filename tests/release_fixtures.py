"""Shared fixtures: a synthetic export in the real release's layout (12 videos: train 10, val 1, test 1, and one
background video), made once per test module, and a fresh copy of it per test to damage freely.

``conftest.py`` imports them, so every test module can ask for them.
"""

from __future__ import annotations

import shutil

import pytest

from examples.ave.export import export_synthetic

N = 12


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("ave") / "release"
    export_synthetic(root, num_videos=N, features="vgg19", dtype="float32", seed=0, progress=False)
    return root


@pytest.fixture
def copy(release, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(release, dst)
    return dst
