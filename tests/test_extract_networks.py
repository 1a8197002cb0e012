"""VGG-19 and VGGish in plain PyTorch: the published files' keys and shapes (listed in test_extract_support),
loading each layout (Keras notop and full, torchvision, torchvggish, the PCA file as tensors or numpy arrays),
refusing anything else with a message that names the flag and the file, the Keras kernel orientation against
a direct convolution, VGGish's channels-last flatten, and the frame preprocessing against its formulas."""

from __future__ import annotations

import copy
import functools
import shutil

import h5py
import numpy as np
import pytest
import torch
from test_extract_support import (
    TORCHVISION_VGG19,
    VGGISH,
    VGGISH_PCA,
    keras_to_torchvision,
    pca_state,
    vggish_state,
    weight_files,
    write_keras_vgg19,
)

from examples.ave.extract.errors import ConfigError
from examples.ave.extract.image import SIZE, caffe_input, squash_resize, torchvision_crop, torchvision_input
from examples.ave.extract.vgg19 import VGG19Pool5, load_vgg19
from examples.ave.extract.vggish import VGGish, load_pca, load_vggish


def shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def random_filled(cls, **kwargs) -> torch.nn.Module:
    """A module of ``cls`` without its (slow) default init, filled with N(0, 1/fan_in) weights."""
    model = torch.nn.utils.skip_init(cls, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 100
            p.normal_(0, fan_in ** -0.5)
    return model.eval()


@functools.lru_cache(maxsize=1)
def keras_model() -> VGG19Pool5:
    return load_vgg19(weight_files()["keras_notop"])[0]


def test_modules_have_the_published_keys_and_shapes():
    meta = torch.device("meta")
    assert shapes(VGG19Pool5(device=meta)) == {k: s for k, s in TORCHVISION_VGG19.items() if k.startswith("features.")}
    assert shapes(VGGish(device=meta)) == VGGISH
    assert shapes(VGGish(final_relu=False, device=meta)) == VGGISH


@pytest.mark.parametrize("layout,fmt", [("keras_notop", "keras-notop"), ("keras_full", "keras-full"),
                                        ("torchvision", "torchvision")])
def test_vgg19_loads_each_published_layout(layout, fmt):
    files = weight_files()
    model, info = load_vgg19(files[layout]) if layout != "keras_notop" else (keras_model(), load_vgg19_info(layout))
    assert info.format == fmt and info.flag == "--vgg19-weights" and len(info.sha256) == 64
    want = keras_to_torchvision(files["keras_notop"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, want[key]), key
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def load_vgg19_info(layout):
    return load_vgg19(weight_files()[layout])[1]


def test_keras_kernels_keep_their_orientation():
    """features.0 of the loaded model equals TensorFlow's SAME cross-correlation with the HWIO kernel, float64."""
    files = weight_files()
    with h5py.File(files["keras_notop"], "r") as f:
        kernel = f["block1_conv1"]["block1_conv1_W_1:0"][()].astype(np.float64)  # (kh, kw, I, O)
        bias = f["block1_conv1"]["block1_conv1_b_1:0"][()].astype(np.float64)
    x = np.random.default_rng(0).standard_normal((9, 11, 3))
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    want = np.zeros((9, 11, 64))
    for dy in range(3):
        for dx in range(3):
            want += padded[dy:dy + 9, dx:dx + 11] @ kernel[dy, dx]
    want += bias
    conv = copy.deepcopy(keras_model().features[0]).double()
    got = conv(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_vgg19_output_is_block5_pool_channels_last():
    model = random_filled(VGG19Pool5)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        got = model(x)
        nchw = model.features(x)
    assert got.shape == (2, 2, 3, 512) and nchw.shape == (2, 512, 2, 3)
    assert torch.equal(got[1, 1, 2], nchw[1, :, 1, 2])
    assert len([m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]) == 5


def test_vgg19_on_one_224_frame_gives_7x7x512():
    with torch.inference_mode():
        out = keras_model()(caffe_input(torch.randint(0, 256, (1, SIZE, SIZE, 3), dtype=torch.uint8)))
    assert out.shape == (1, 7, 7, 512) and (out >= 0).all()


def test_vggish_flattens_channels_last_and_keeps_its_final_relu():
    """Embedding j is made to read one cell (h, w, c) of the last map: it must be column (h*4 + w)*512 + c of
    embeddings.0, TensorFlow's channels-last flatten; a bias of -1 on the last layer shows its ReLU."""
    rng = np.random.default_rng(0)
    cells = [(int(rng.integers(6)), int(rng.integers(4)), int(rng.integers(512))) for _ in range(128)]
    x = torch.randn(3, 96, 64)
    for final_relu in (True, False):
        model = torch.nn.utils.skip_init(VGGish, final_relu=final_relu).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            for conv in model.features:
                if isinstance(conv, torch.nn.Conv2d):
                    conv.weight.normal_(0, (2 / conv.weight[0].numel()) ** 0.5)
            for j, (h, w, c) in enumerate(cells):
                model.embeddings[0].weight[j, (h * 4 + w) * 512 + c] = 1.0
                model.embeddings[2].weight[j, j] = 1.0
                model.embeddings[4].weight[j, j] = 1.0
            model.embeddings[4].bias.fill_(-1.0)
            maps = model.features(x[:, None])  # (B, C, h, w) = (3, 512, 6, 4), >= 0
            picked = torch.stack([maps[:, c, h, w] for h, w, c in cells], dim=1)
            got = model(x)
        assert maps.shape == (3, 512, 6, 4) and got.shape == (3, 128)
        assert torch.equal(got, torch.relu(picked - 1) if final_relu else picked - 1)
        assert (got < 0).any() != final_relu


def test_vggish_and_pca_files_load():
    files = weight_files()
    model, info = load_vggish(files["vggish"])
    want = vggish_state()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    assert info.format == "torchvggish" and info.flag == "--vggish-weights"
    for name in ("pca", "pca_numpy"):
        (eigen, means), info = load_pca(files[name])
        ref = pca_state()
        assert eigen.dtype == torch.float64 and torch.equal(eigen, ref["pca_eigen_vectors"])
        assert torch.equal(means, ref["pca_means"]) and info.flag == "--vggish-pca"


def test_pca_means_as_a_column_are_accepted(tmp_path):
    state = pca_state()
    state["pca_means"] = state["pca_means"].reshape(128, 1)
    torch.save(state, tmp_path / "pca.pth")
    (_, means), _ = load_pca(tmp_path / "pca.pth")
    assert means.shape == (128,)


# ---- refusals -------------------------------------------------------------------------------------------


def refuses(loader, path, *patterns):
    with pytest.raises(ConfigError) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message or path.name in message
    for p in patterns:
        assert p in message, message
    return message


def test_published_name_with_another_hash_is_refused(tmp_path):
    files = weight_files()
    fake = tmp_path / "vgg19-dcbb9e9d.pth"
    shutil.copy(files["torchvision"], fake)
    refuses(load_vgg19, fake, "--vgg19-weights", "dcbb9e9d", "SHA-256")
    fake = tmp_path / "vggish-10086976.pth"
    shutil.copy(files["vggish"], fake)
    refuses(load_vggish, fake, "--vggish-weights", "10086976")
    fake = tmp_path / "vggish_pca_params-970ea276.pth"
    shutil.copy(files["pca"], fake)
    refuses(load_pca, fake, "--vggish-pca", "970ea276")


def test_wrong_keys_and_shapes_are_refused(tmp_path):
    state = torch.load(weight_files()["torchvision"], weights_only=True)
    missing = {k: v for k, v in state.items() if k != "features.34.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    refuses(load_vgg19, tmp_path / "missing.pth", "features.34.bias", "missing")
    torch.save({**state, "features.0.weight": torch.zeros(64, 3, 5, 5)}, tmp_path / "shape.pth")
    refuses(load_vgg19, tmp_path / "shape.pth", "features.0.weight", "(64, 3, 5, 5)", "(64, 3, 3, 3)")
    torch.save({**vggish_state(), "embeddings.6.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    refuses(load_vggish, tmp_path / "extra.pth", "embeddings.6.weight", "unexpected")
    torch.save({"pca_eigen_vectors": torch.zeros(64, 128), "pca_means": torch.zeros(128)}, tmp_path / "pca.pth")
    refuses(load_pca, tmp_path / "pca.pth", "pca_eigen_vectors", "(64, 128)")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_never_unpickled(tmp_path, capsys):
    torch.save({"features.0.weight": Payload()}, tmp_path / "evil.pth")
    refuses(load_vgg19, tmp_path / "evil.pth", "weights_only=True")
    assert "must never run" not in capsys.readouterr().out
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    refuses(load_vggish, tmp_path / "list.pth", "expected a state dict")
    (tmp_path / "text.pth").write_text("not weights")
    refuses(load_vgg19, tmp_path / "text.pth", "weights_only=True")


def test_keras_files_of_another_shape_are_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    refuses(load_vgg19, tmp_path / "other.h5", "block1_conv1", "vgg19_weights_tf_dim_ordering_tf_kernels")
    path = write_keras_vgg19(tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        del f["block3_conv2"]["block3_conv2_W_1:0"]
        f["block3_conv2"].create_dataset("block3_conv2_W_1:0", data=np.zeros((3, 3, 256, 128), np.float32))
    refuses(load_vgg19, path, "block3_conv2", "(3, 3, 256, 128)", "(3, 3, 256, 256)")
    path = write_keras_vgg19(tmp_path / "half_top.h5", full=True)
    with h5py.File(path, "r+") as f:
        del f["fc2"]
    refuses(load_vgg19, path, "fc1", "neither the notop nor the full")


def test_missing_or_unreadable_paths_are_refused(tmp_path):
    refuses(load_vgg19, tmp_path / "absent.h5", "no such file")
    (tmp_path / "dir.pth").mkdir()
    refuses(load_vggish, tmp_path / "dir.pth", "a directory")


# ---- frame preprocessing ------------------------------------------------------------------------------------


def ref_cv2_linear(frame: np.ndarray, size: int) -> np.ndarray:
    """cv2.resize INTER_LINEAR's formula, pixel by pixel, in float64, rounded half up."""
    h, w, _ = frame.shape

    def taps(n_in, d):
        src = (d + 0.5) * n_in / size - 0.5
        if src <= 0:
            return 0, 0, 0.0
        if src >= n_in - 1:
            return n_in - 1, n_in - 1, 0.0
        lo = int(np.floor(src))
        return lo, lo + 1, src - lo

    out = np.zeros((size, size, 3))
    for y in range(size):
        y0, y1, fy = taps(h, y)
        for x in range(size):
            x0, x1, fx = taps(w, x)
            top = frame[y0, x0] * (1 - fx) + frame[y0, x1] * fx
            bottom = frame[y1, x0] * (1 - fx) + frame[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return np.floor(out + 0.5).astype(np.uint8)


@pytest.mark.parametrize("h,w", [(37, 53), (300, 500)])
def test_squash_resize_is_cv2_inter_linear(h, w):
    frame = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = squash_resize(frame).numpy()
    want = ref_cv2_linear(frame.astype(np.float64), SIZE)
    assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # only exact .5 ties may round the other way


def test_caffe_input_is_bgr_minus_the_imagenet_means():
    frames = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8)
    got = caffe_input(frames)
    rgb = frames.to(torch.float32)
    assert got.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(got[:, 0], rgb[..., 2] - 103.939)
    assert torch.equal(got[:, 1], rgb[..., 1] - 116.779)
    assert torch.equal(got[:, 2], rgb[..., 0] - 123.68)


def test_torchvision_preprocessing_resizes_the_short_side_and_crops_the_centre():
    frame = np.zeros((240, 480, 3), dtype=np.uint8)
    frame[:, 232:248] = 255  # a bar at the centre
    crop = torchvision_crop(frame)
    assert crop.shape == (SIZE, SIZE, 3)
    bright = torch.nonzero(crop[SIZE // 2, :, 0] > 128).flatten()
    assert abs(float(bright.float().mean()) - (SIZE - 1) / 2) < 1.0  # still at the centre
    x = torchvision_input(crop[None])
    assert torch.allclose(x[0, :, 0, 0], (torch.zeros(3) - torch.tensor([0.485, 0.456, 0.406]))
                          / torch.tensor([0.229, 0.224, 0.225]))


def test_pca_file_listed_shapes():
    assert {k: tuple(v.shape) for k, v in pca_state().items()} == VGGISH_PCA
