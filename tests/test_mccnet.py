"""MCCNet: part sizes, the dead conv switch, the eps guard, alpha blending, E and a short overfit."""

from __future__ import annotations

import copy
from dataclasses import fields

import pytest
import torch

from lottery_style.models.components.stats import total_variation
from lottery_style.models.mccnet import MCCBlock, MCCNet, MCCNetLossWeights
from tests.conftest import TINY, compose_train, overfit, tiny_model


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def plus() -> MCCNet:
    return tiny_model("mccnet")


@pytest.mark.parametrize(("flag", "expected"), [(False, 1_050_624), (True, 1_313_280)])
def test_transform_size_with_and_without_the_unused_conv(flag, expected):
    model = tiny_model("mccnet", include_unused_conv=flag)
    assert count(model.transform) == expected
    assert count(model.decoder) == 3_505_219
    assert hasattr(model.transform, "h") == flag


def test_plus_encoder_stops_at_relu4_1_and_frozen_encoder_is_the_loss_net(plus):
    assert count(plus.encoder) == 3_505_740  # relu4_1: the only level T uses
    assert plus.loss_net is not None and plus.loss_net.depth == 5
    frozen = tiny_model("mccnet", train_encoder=False)
    assert count(frozen.encoder) == 12_944_972 and frozen.loss_net is None
    assert not any(p.requires_grad for p in frozen.encoder.parameters())


def test_non_square_shapes_and_term_names(plus):
    content, style = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        assert plus.stylize(content, style).shape == (1, 3, 64, 96)
        result = plus.losses(content, style)
    assert result.stylized.shape == (1, 3, 64, 96)
    assert set(result.terms) == {f.name for f in fields(MCCNetLossWeights)}
    assert all(t.shape == (1,) and torch.isfinite(t).all() for t in result.terms.values())


def test_constant_style_stays_finite():
    torch.manual_seed(0)
    block = MCCBlock(channels=8)
    with torch.no_grad():
        block.g.bias.zero_()  # constant style -> mvn 0 -> keys exactly 0: 0/0 without eps
    content = torch.randn(1, 8, 5, 6, requires_grad=True)
    style = torch.full((1, 8, 4, 4), 0.7, requires_grad=True)
    out = block(content, style)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())
    assert torch.isfinite(content.grad).all() and torch.isfinite(style.grad).all()


def test_constant_style_image_gives_finite_losses_and_gradients(plus):
    terms = plus.losses(torch.rand(1, 3, 32, 32), torch.full((1, 3, 32, 32), 0.5)).terms
    plus.weighted_loss(terms).backward()
    grads = [p.grad for p in plus.trainable_parameters() if p.grad is not None]
    plus.zero_grad(set_to_none=True)
    assert all(torch.isfinite(t).all() for t in terms.values())
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_alpha_blends_with_the_content_identity(plus):
    # float64: the correlation weight sum(G^2)/sum(G) amplifies float32 rounding of batched vs single calls
    model = copy.deepcopy(plus).double()
    content, style = torch.rand(1, 3, 32, 32, dtype=torch.float64), torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        fc, fs = model.encoder(content)[3], model.encoder(style)[3]
        expected = model.decoder(0.3 * model.transform(fc, fs) + 0.7 * model.transform(fc, fc))
        torch.testing.assert_close(model.stylize(content, style, alpha=0.3), expected)
        torch.testing.assert_close(model.stylize(content, style, alpha=0.0), model.decoder(model.transform(fc, fc)))


def test_test_error_groups_are_deterministic(plus):
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    first, second = plus.test_errors(content, style), plus.test_errors(content, style)
    assert torch.equal(first["E"], second["E"])  # the random illumination term is not in E
    with torch.no_grad():
        terms = plus.losses(content, style).terms
    assert torch.allclose(first["E_content"], terms["content"] + terms["identity1"] + terms["identity2"])
    assert torch.allclose(first["E_style"], terms["style"])


def test_losses_reject_sizes_the_identity_losses_cannot_compare(plus):
    with pytest.raises(ValueError, match="got a style image of 36x32"):
        plus.losses(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 36, 32))


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="noise_std_min=0.03"):
        tiny_model("mccnet", noise_std_min=0.03)
    with pytest.raises(ValueError, match="model.eps=0.0"):
        tiny_model("mccnet", eps=0.0)


def test_yaml_composes_with_the_reference_weights():
    cfg = compose_train([*TINY, "model=mccnet"]).model
    assert cfg.include_unused_conv is False and cfg.optimizer.lr_decay == 5e-5
    assert dict(cfg.loss_weights) == {
        "content": 3.0, "style": 10.0, "identity1": 70.0, "identity2": 1.0, "illumination": 3000.0, "tv": 1e-4,
    }  # fmt: skip


def test_total_variation_is_summed_over_the_batch_as_the_reference_does(plus):
    """MCCNet's net.py: ``tv_loss = torch.sum(|dx|) + torch.sum(|dy|)`` over the whole batch, times 10e-5 in train.py."""
    image = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]], [[[1.0, 1.0, 1.0], [1.0, 1.0, 5.0]]]])
    # by hand: sample 0 has |dx| 1+2+0+0 and |dy| 2+1+1, 7 in all; sample 1 has |dx| 0+0+0+4 and |dy| 0+0+4, 8
    assert total_variation(image).tolist() == [7.0, 8.0]
    model = plus
    assert model.weighted_loss({"tv": total_variation(image)}).item() == pytest.approx(10e-5 * (7 + 8), rel=1e-6)
    assert model.weighted_loss({"content": torch.tensor([1.0, 3.0])}).item() == pytest.approx(3.0 * 2.0)  # a mean
    y = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    reference = torch.sum(torch.abs(y[:, :, :, :-1] - y[:, :, :, 1:])) + torch.sum(torch.abs(y[:, :, :-1, :] - y[:, :, 1:, :]))
    assert model.weighted_loss({"tv": total_variation(y)}).item() == pytest.approx(10e-5 * reference.item(), rel=1e-5)


def test_short_overfit_lowers_weighted_loss():
    model = tiny_model("mccnet", optimizer={"lr": 1e-3})
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    history = overfit(model, content, style, steps=3)  # illumination noise is tiny next to the other terms
    assert history[-1] < history[0]
