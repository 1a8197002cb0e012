"""VGG-19's convolutional tower up to ``block5_pool``, in plain PyTorch, and its two published weight files.

Axis legend: B frames, C channels, H, W pixels (224 in), h, w pool5 cells (7 x 7 out), O, I kernel
out/in channels, kh, kw kernel rows/columns.

``--vgg19-weights FILE`` is recognised by content:
  * Keras (HDF5): ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` or the full
    ``vgg19_weights_tf_dim_ordering_tf_kernels.h5`` (the AVE release's network: the conv part is the same in
    both). A group per layer (``block1_conv1`` ... ``block5_conv4``) holding a kernel (kh, kw, I, O) and a
    bias (O,); the full file adds ``fc1``, ``fc2``, ``predictions``. Kernels are transposed to (O, I, kh, kw).
  * torchvision: ``vgg19-dcbb9e9d.pth``, keys ``features.{0,2,...,34}.{weight,bias}`` and
    ``classifier.{0,3,6}.*`` (the classifier is checked, not used).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .weights import (
    WeightFile,
    check_file,
    check_hash_in_name,
    check_keys_and_shapes,
    is_hdf5,
    load_state_dict,
    sha256_of,
)

FLAG = "--vgg19-weights"
WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
KERAS_LAYERS = tuple(f"block{b + 1}_conv{c + 1}" for b, n in enumerate(CONVS_PER_BLOCK) for c in range(n))
KERAS_TOP = {"fc1": (25088, 4096), "fc2": (4096, 4096), "predictions": (4096, 1000)}
TORCHVISION_CLASSIFIER = {"classifier.0": (4096, 25088), "classifier.3": (4096, 4096), "classifier.6": (1000, 4096)}


def conv_indices() -> list[int]:
    """The ``features.N`` index of each conv in torchvision's VGG-19 (ReLU after each, a max-pool per block)."""
    out, i = [], 0
    for n in CONVS_PER_BLOCK:
        for _ in range(n):
            out.append(i)
            i += 2
        i += 1
    return out


def conv_shapes(widths=WIDTHS) -> list[tuple[int, int]]:
    """(in, out) channels of each conv."""
    shapes, c = [], 3
    for w, n in zip(widths, CONVS_PER_BLOCK):
        for _ in range(n):
            shapes.append((c, w))
            c = w
    return shapes


def feature_state_shapes(widths=WIDTHS) -> dict[str, tuple[int, ...]]:
    """``features.N.{weight,bias}`` -> shape, for the conv tower."""
    out = {}
    for i, (cin, cout) in zip(conv_indices(), conv_shapes(widths)):
        out[f"features.{i}.weight"] = (cout, cin, 3, 3)
        out[f"features.{i}.bias"] = (cout,)
    return out


class VGG19Pool5(nn.Module):
    """(B, 3, 224, 224) preprocessed frames -> (B, 7, 7, C) ``block5_pool`` maps, channels last (C = 512).

    ``widths`` (the channels of the five blocks) exists for plumbing tests; the weight files fit the default.
    """

    def __init__(self, widths=WIDTHS, device=None, dtype=None):
        super().__init__()
        layers, shapes = [], iter(conv_shapes(widths))
        for n in CONVS_PER_BLOCK:
            for _ in range(n):
                cin, cout = next(shapes)
                layers += [nn.Conv2d(cin, cout, 3, padding=1, device=device, dtype=dtype), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.widths = tuple(widths)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(frames).permute(0, 2, 3, 1)


def _keras_layer_weights(group, name: str, path: Path) -> list:
    """The layer's weight datasets, in the order of its ``weight_names`` attribute (Keras's own order)."""
    import h5py

    names = group.attrs.get("weight_names")
    if names is not None and len(names):
        return [group[n.decode() if isinstance(n, bytes) else n] for n in names]
    found = []
    group.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    if not found:
        raise ConfigError(f"{FLAG} {os.fspath(path)!r}: layer {name!r} holds no weights")
    return found


def _kernel_and_bias(datasets: list, name: str, path: Path, kernel_dims: int):
    kernels = [d for d in datasets if d.ndim == kernel_dims]
    biases = [d for d in datasets if d.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1 or len(datasets) != 2:
        raise ConfigError(f"{FLAG} {os.fspath(path)!r}: layer {name!r} holds arrays of shapes "
                          f"{[d.shape for d in datasets]}, expected a {kernel_dims}-D kernel and a bias")
    return kernels[0], biases[0]


def read_keras(path: Path) -> tuple[dict, str]:
    """Keras VGG-19 HDF5 -> (torchvision-keyed conv state dict, "keras-notop" | "keras-full")."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ConfigError(f"{FLAG} {os.fspath(path)!r}: cannot be read as HDF5 ({exc})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        present = set(root.keys())
        missing = [n for n in KERAS_LAYERS if n not in present]
        if missing:
            raise ConfigError(f"{FLAG} {os.fspath(path)!r}: an HDF5 file without the Keras VGG-19 layers "
                              f"{missing[:3]}{' ...' if len(missing) > 3 else ''} (found {sorted(present)[:6]}); "
                              "expected vgg19_weights_tf_dim_ordering_tf_kernels[_notop].h5")
        state = {}
        for i, name, (cin, cout) in zip(conv_indices(), KERAS_LAYERS, conv_shapes()):
            kernel, bias = _kernel_and_bias(_keras_layer_weights(root[name], name, path), name, path, 4)
            if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
                raise ConfigError(f"{FLAG} {os.fspath(path)!r}: {name} has kernel {kernel.shape} and bias "
                                  f"{bias.shape}, expected (3, 3, {cin}, {cout}) and ({cout},)")
            hwio = np.asarray(kernel)
            state[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(hwio.transpose(3, 2, 0, 1)))
            state[f"features.{i}.bias"] = torch.from_numpy(np.asarray(bias))
        top = [n for n in KERAS_TOP if n in present]  # shapes checked, values not read
        if top and len(top) != len(KERAS_TOP):
            raise ConfigError(f"{FLAG} {os.fspath(path)!r}: holds the top layers {top} but not all of "
                              f"{list(KERAS_TOP)}: neither the notop nor the full Keras file")
        for name in top:
            kernel, bias = _kernel_and_bias(_keras_layer_weights(root[name], name, path), name, path, 2)
            if kernel.shape != KERAS_TOP[name] or bias.shape != (KERAS_TOP[name][1],):
                raise ConfigError(f"{FLAG} {os.fspath(path)!r}: {name} has kernel {kernel.shape}, expected "
                                  f"{KERAS_TOP[name]}")
    check_keys_and_shapes(FLAG, path, state, feature_state_shapes())
    return state, "keras-full" if top else "keras-notop"


def read_torchvision(path: Path) -> dict:
    state = load_state_dict(FLAG, path)
    classifier = {f"{k}.{p}": (s if p == "weight" else s[:1]) for k, s in TORCHVISION_CLASSIFIER.items()
                  for p in ("weight", "bias")}
    check_keys_and_shapes(FLAG, path, state, feature_state_shapes(), optional=classifier)
    return {k: v for k, v in state.items() if k.startswith("features.")}


def load_vgg19(path, device=None) -> tuple[VGG19Pool5, WeightFile]:
    """The conv tower with the weights of ``path`` (Keras or torchvision, by content), in eval mode, float32."""
    path = check_file(FLAG, path)
    sha = sha256_of(path)
    check_hash_in_name(FLAG, path, sha)
    if is_hdf5(path):
        state, fmt = read_keras(path)
    else:
        state, fmt = read_torchvision(path), "torchvision"
    model = nn.utils.skip_init(VGG19Pool5, device=device or "cpu")  # no random init: every weight comes from the file
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.eval().requires_grad_(False), WeightFile(FLAG, os.fspath(path), fmt, sha)
