"""Shared by the extract tests (``from test_extract_support import ...``): the published weight files' keys and
shapes written out by hand, writers of random weights in each published layout, and stand-in networks for
tests about plumbing. Its own tests check that the writers produce exactly the listed layouts.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

# vgg19-dcbb9e9d.pth (pytorch/vision torchvision/models/vgg.py): 16 convs (OIHW) and the classifier.
TORCHVISION_VGG19 = {
    "features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,),
    "features.2.weight": (64, 64, 3, 3), "features.2.bias": (64,),
    "features.5.weight": (128, 64, 3, 3), "features.5.bias": (128,),
    "features.7.weight": (128, 128, 3, 3), "features.7.bias": (128,),
    "features.10.weight": (256, 128, 3, 3), "features.10.bias": (256,),
    "features.12.weight": (256, 256, 3, 3), "features.12.bias": (256,),
    "features.14.weight": (256, 256, 3, 3), "features.14.bias": (256,),
    "features.16.weight": (256, 256, 3, 3), "features.16.bias": (256,),
    "features.19.weight": (512, 256, 3, 3), "features.19.bias": (512,),
    "features.21.weight": (512, 512, 3, 3), "features.21.bias": (512,),
    "features.23.weight": (512, 512, 3, 3), "features.23.bias": (512,),
    "features.25.weight": (512, 512, 3, 3), "features.25.bias": (512,),
    "features.28.weight": (512, 512, 3, 3), "features.28.bias": (512,),
    "features.30.weight": (512, 512, 3, 3), "features.30.bias": (512,),
    "features.32.weight": (512, 512, 3, 3), "features.32.bias": (512,),
    "features.34.weight": (512, 512, 3, 3), "features.34.bias": (512,),
    "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}

# vgg19_weights_tf_dim_ordering_tf_kernels[_notop].h5 (fchollet/deep-learning-models v0.1, Keras 1 naming):
# root attribute layer_names; one group per layer with attribute weight_names; kernels HWIO.
KERAS_VGG19_LAYERS = [
    "input_1", "block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2", "block2_pool",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4", "block3_pool",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4", "block4_pool",
    "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4", "block5_pool",
]
KERAS_VGG19_TOP_LAYERS = ["flatten", "fc1", "fc2", "predictions"]
KERAS_VGG19_WEIGHTS = {
    "block1_conv1": {"block1_conv1_W_1:0": (3, 3, 3, 64), "block1_conv1_b_1:0": (64,)},
    "block1_conv2": {"block1_conv2_W_1:0": (3, 3, 64, 64), "block1_conv2_b_1:0": (64,)},
    "block2_conv1": {"block2_conv1_W_1:0": (3, 3, 64, 128), "block2_conv1_b_1:0": (128,)},
    "block2_conv2": {"block2_conv2_W_1:0": (3, 3, 128, 128), "block2_conv2_b_1:0": (128,)},
    "block3_conv1": {"block3_conv1_W_1:0": (3, 3, 128, 256), "block3_conv1_b_1:0": (256,)},
    "block3_conv2": {"block3_conv2_W_1:0": (3, 3, 256, 256), "block3_conv2_b_1:0": (256,)},
    "block3_conv3": {"block3_conv3_W_1:0": (3, 3, 256, 256), "block3_conv3_b_1:0": (256,)},
    "block3_conv4": {"block3_conv4_W_1:0": (3, 3, 256, 256), "block3_conv4_b_1:0": (256,)},
    "block4_conv1": {"block4_conv1_W_1:0": (3, 3, 256, 512), "block4_conv1_b_1:0": (512,)},
    "block4_conv2": {"block4_conv2_W_1:0": (3, 3, 512, 512), "block4_conv2_b_1:0": (512,)},
    "block4_conv3": {"block4_conv3_W_1:0": (3, 3, 512, 512), "block4_conv3_b_1:0": (512,)},
    "block4_conv4": {"block4_conv4_W_1:0": (3, 3, 512, 512), "block4_conv4_b_1:0": (512,)},
    "block5_conv1": {"block5_conv1_W_1:0": (3, 3, 512, 512), "block5_conv1_b_1:0": (512,)},
    "block5_conv2": {"block5_conv2_W_1:0": (3, 3, 512, 512), "block5_conv2_b_1:0": (512,)},
    "block5_conv3": {"block5_conv3_W_1:0": (3, 3, 512, 512), "block5_conv3_b_1:0": (512,)},
    "block5_conv4": {"block5_conv4_W_1:0": (3, 3, 512, 512), "block5_conv4_b_1:0": (512,)},
}
KERAS_VGG19_TOP_WEIGHTS = {
    "fc1": {"fc1_W_1:0": (25088, 4096), "fc1_b_1:0": (4096,)},
    "fc2": {"fc2_W_1:0": (4096, 4096), "fc2_b_1:0": (4096,)},
    "predictions": {"predictions_W_1:0": (4096, 1000), "predictions_b_1:0": (1000,)},
}

# vggish-10086976.pth (harritaylor/torchvggish v0.1, torchvggish/vggish.py's module layout)
VGGISH = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}
# vggish_pca_params-970ea276.pth
VGGISH_PCA = {"pca_eigen_vectors": (128, 128), "pca_means": (128,)}


def he_normal(shape, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def large(shape, rng: np.random.Generator) -> torch.Tensor:
    """A random (rows, cols) Hankel matrix, W[i, j] = b[i + j], stored as its rows + cols - 1 numbers (strides
    (1, 1)): the published shape in a small file."""
    values = torch.from_numpy(he_normal((shape[0] + shape[1] - 1,), shape[1], rng))
    return torch.as_strided(values, shape, (1, 1))


def write_keras_vgg19(path: Path, *, full: bool = False, seed: int = 0) -> Path:
    """Random conv weights in the Keras layout; the full file's top layers are declared but never written (their
    values are never read)."""
    rng = np.random.default_rng(seed)
    layers = KERAS_VGG19_LAYERS + (KERAS_VGG19_TOP_LAYERS if full else [])
    weights = {**KERAS_VGG19_WEIGHTS, **(KERAS_VGG19_TOP_WEIGHTS if full else {})}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers], dtype="S")
        f.attrs["keras_version"], f.attrs["backend"] = b"1.1.0", b"tensorflow"
        for layer in layers:
            g = f.create_group(layer)
            g.attrs["weight_names"] = np.array([n.encode() for n in weights.get(layer, {})], dtype="S")
            for name, shape in weights.get(layer, {}).items():
                if layer in KERAS_VGG19_TOP_WEIGHTS:
                    g.create_dataset(name, shape, dtype="float32", chunks=True)
                elif len(shape) == 4:
                    g.create_dataset(name, data=he_normal(shape, 9 * shape[2], rng))
                else:
                    g.create_dataset(name, data=(0.01 * rng.standard_normal(shape)).astype(np.float32))
    return path


def keras_to_torchvision(path: Path) -> dict[str, torch.Tensor]:
    """An independent reading of a Keras file: HWIO kernels transposed to OIHW under torchvision's keys."""
    indices = [int(k.split(".")[1]) for k in TORCHVISION_VGG19 if k.startswith("features.") and k.endswith("weight")]
    out = {}
    with h5py.File(path, "r") as f:
        for i, layer in zip(indices, KERAS_VGG19_WEIGHTS):
            kernel, bias = (f[layer][n][()] for n in KERAS_VGG19_WEIGHTS[layer])
            out[f"features.{i}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1)
            out[f"features.{i}.bias"] = torch.from_numpy(bias)
    return out


def hub_name(directory: Path, stem: str, state: dict, *, legacy: bool = False) -> Path:
    """Save ``state`` as ``STEM-<first 8 hex digits of its SHA-256>.pth`` (torch.hub's naming)."""
    tmp = directory / f"{stem}.tmp"
    torch.save(state, tmp, _use_new_zipfile_serialization=not legacy)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(directory / f"{stem}-{digest[:8]}.pth")


def torchvision_vgg19_state(keras_file: Path) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(1)
    state = keras_to_torchvision(keras_file)
    for key, shape in TORCHVISION_VGG19.items():
        if key.startswith("classifier"):
            state[key] = large(shape, rng) if len(shape) == 2 else torch.zeros(shape)
    return state


def vggish_state(seed: int = 2) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in VGGISH.items():
        if key.endswith("bias"):
            state[key] = torch.from_numpy((0.01 * rng.standard_normal(shape)).astype(np.float32))
        elif len(shape) == 4:
            state[key] = torch.from_numpy(he_normal(shape, 9 * shape[1], rng))
        else:
            state[key] = large(shape, rng)
    return state


def pca_state(seed: int = 3, as_numpy: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    state = {"pca_eigen_vectors": q, "pca_means": rng.standard_normal(128) * 0.1}
    return state if as_numpy else {k: torch.from_numpy(v) for k, v in state.items()}


@functools.lru_cache(maxsize=1)
def weight_files() -> dict[str, Path]:
    """Random weights in every published layout, written once per test process."""
    d = Path(tempfile.mkdtemp(prefix="avattn-extract-weights-"))
    atexit.register(shutil.rmtree, d, True)
    keras = write_keras_vgg19(d / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    full = write_keras_vgg19(d / "vgg19_weights_tf_dim_ordering_tf_kernels.h5", full=True)
    return {
        "keras_notop": keras,
        "keras_full": full,
        "torchvision": hub_name(d, "vgg19", torchvision_vgg19_state(keras), legacy=True),
        "vggish": hub_name(d, "vggish", vggish_state()),
        "pca": hub_name(d, "vggish_pca_params", pca_state()),
        "pca_numpy": hub_name(d, "vggish_pca_params_np", pca_state(as_numpy=True)),
    }


class StandInVisual(torch.nn.Module):
    """For plumbing tests: (B, 3, 224, 224) -> (B, 7, 7, 512), a 32x32 average and a 1x1 conv (not VGG-19)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 512, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.avg_pool2d(frames, 32)
        return torch.relu(self.proj(pooled)).permute(0, 2, 3, 1)


class StandInAudio(torch.nn.Module):
    """For plumbing tests: (B, 96, 64) -> (B, 128), one linear layer and a ReLU (not VGGish)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(96 * 64, 128)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(examples.flatten(1)))


@functools.lru_cache(maxsize=4)
def stand_in_networks(seed: int = 0, vggish: bool = False):
    """Stand-in networks (``vggish``: the real VGGish architecture, PyTorch's default random init); cached, as
    they hold no state."""
    from examples.ave.extract.pipeline import Networks
    from examples.ave.extract.vggish import VGGish

    torch.manual_seed(seed)
    audio = VGGish() if vggish else StandInAudio()
    return Networks(StandInVisual().eval(), audio.eval(), torch.device("cpu"),
                    {"stand_in": {"seed": seed, "vggish": vggish}})


# ---- the writers produce exactly the listed layouts ----------------------------------------------------

def test_keras_files_hold_the_listed_layers_and_weights():
    files = weight_files()
    for name, top in (("keras_notop", False), ("keras_full", True)):
        with h5py.File(files[name], "r") as f:
            assert [n.decode() for n in f.attrs["layer_names"]] == KERAS_VGG19_LAYERS + (
                KERAS_VGG19_TOP_LAYERS if top else [])
            listed = {**KERAS_VGG19_WEIGHTS, **(KERAS_VGG19_TOP_WEIGHTS if top else {})}
            for layer, weights in listed.items():
                assert [n.decode() for n in f[layer].attrs["weight_names"]] == list(weights)
                assert {n: f[layer][n].shape for n in weights} == weights


def test_pth_files_hold_the_listed_keys_and_shapes():
    files = weight_files()
    for name, listed in (("torchvision", TORCHVISION_VGG19), ("vggish", VGGISH), ("pca", VGGISH_PCA)):
        state = torch.load(files[name], weights_only=True)
        assert {k: tuple(v.shape) for k, v in state.items()} == listed
    assert files["torchvision"].name.startswith("vgg19-") and files["vggish"].name.startswith("vggish-")
