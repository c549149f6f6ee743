"""AdaIN: the transform's statistics, the decoder's output size, overfitting with and without "+", shallower levels."""

from __future__ import annotations

import pytest
import torch

from lottery_style.models.components.decoder import MirrorDecoder
from lottery_style.models.components.stats import adain, mean_std, mean_std_loss, mse_per_sample
from lottery_style.models.components.vgg import WeightsError
from tests.conftest import count, overfit, tiny_model


def test_adain_output_has_the_style_statistics() -> None:
    torch.manual_seed(0)
    content, style = torch.randn(2, 512, 8, 8) * 3 + 1, torch.randn(2, 512, 6, 10) * 0.5 - 2
    out_mean, out_std = mean_std(adain(content, style))
    style_mean, style_std = mean_std(style)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_std, style_std, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("size", [(32, 32), (40, 64), (64, 48)])
def test_decoder_output_has_the_input_size(size) -> None:
    model = tiny_model("adain")
    out = model.stylize(torch.rand(1, 3, *size), torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 3, *size)


def test_parameter_counts_by_part() -> None:
    groups = tiny_model("adain").prunable_weights()
    counts = {part: sum(p.numel() for p in ws.values()) for part, ws in groups.items()}
    # conv weights only: biases and the fixed 1x1 input conv are not prunable
    assert counts == {"encoder": 3_503_808, "transform": 0, "decoder": 3_503_808}


@pytest.mark.parametrize("train_encoder", [True, False])
def test_overfitting_one_batch_lowers_the_loss(train_encoder: bool) -> None:
    model = tiny_model("adain", train_encoder=train_encoder)
    loss_vgg_before = {k: v.clone() for k, v in (model.loss_net or model.encoder).state_dict().items()}
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    torch.manual_seed(1)
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    history = overfit(model, content, style, steps=8)
    assert history[-1] < history[0]
    assert set(model.losses(content, style).terms) == {"content", "style"}
    encoder_changed = any(not torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert encoder_changed == train_encoder
    loss_vgg = model.loss_net or model.encoder  # without "+", the frozen encoder is the loss VGG
    assert (model.loss_net is not None) == train_encoder
    for key, value in loss_vgg_before.items():
        assert torch.equal(value, loss_vgg.state_dict()[key]), key


def test_a_shallower_level_transforms_decodes_and_compares_content_there() -> None:
    """model.level=2: the encoder stops at relu2_1 (128 channels), the decoder is relu2_1's mirror, the content
    term compares the output's relu2_1 with the AdaIN target there and the style term covers relu1_1..relu3_1."""
    model = tiny_model("adain", level=2, style_levels=3)
    torch.manual_seed(2)
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert [f.shape[1] for f in model.encoder(content)] == [64, 128]
    assert count(model.decoder) == count(MirrorDecoder(level=2)) == 112_451
    assert model.stylize(content, style).shape == content.shape
    result = model.losses(content, style)
    out_feats, content_feats, style_feats = (model.loss_net(x) for x in (result.stylized, content, style))
    assert len(out_feats) == 3  # the loss VGG goes to relu3_1 for the style term
    expected_content = mse_per_sample(out_feats[1], adain(content_feats[1], style_feats[1]))
    torch.testing.assert_close(result.terms["content"], expected_content, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.terms["style"], mean_std_loss(out_feats, style_feats), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(result.terms["style"], mean_std_loss(out_feats[:2], style_feats[:2]))


def test_the_reference_decoder_file_is_refused_below_relu4_1(tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"^model\.decoder\.path=.*no reference releases this part"):
        tiny_model("adain", level=2, decoder={"path": str(tmp_path / "decoder.pth")})
