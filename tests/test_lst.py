"""LST: part sizes of both variants, floor pooling, the per-pair matrix, frozen parts and its losses."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from lottery_style.models.lst import LST, LSTLossWeights, mean_gram_loss
from tests.conftest import TINY, compose_train, overfit, tiny_model


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def r41() -> LST:
    return tiny_model("lst")


@pytest.mark.parametrize(
    ("level", "encoder", "transform", "decoder"),
    [(4, 3_505_740, 5_156_192, 3_505_219), (3, 555_340, 2_890_464, 555_075)],
)
def test_parameter_counts_per_part(level, encoder, transform, decoder):
    model = tiny_model("lst", level=level)
    assert (count(model.encoder), count(model.transform), count(model.decoder)) == (encoder, transform, decoder)
    assert model.loss_net is not None and model.loss_net.depth == 5  # separate loss VGG to relu5_1


@pytest.mark.parametrize("level", [3, 4])
def test_non_square_shapes(level):
    model = tiny_model("lst", level=level)
    content, style = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 48, 80)
    assert model.stylize(content, style).shape == (2, 3, 64, 96)
    result = model.losses(content, style)
    assert result.stylized.shape == (2, 3, 64, 96)
    assert {name: tuple(t.shape) for name, t in result.terms.items()} == {"content": (2,), "style": (2,)}


def test_encoder_pools_with_floor(r41):
    # 68 -> 34 -> 17 -> 8 with floor pooling (ceil would give 9)
    assert r41.encoder(torch.rand(1, 3, 68, 68))[-1].shape[-2:] == (8, 8)


def test_losses_reject_a_content_size_the_decoder_cannot_reproduce(r41):
    with pytest.raises(ValueError, match="divisible by 8, got a content image of 36x40"):
        r41.losses(torch.rand(1, 3, 36, 40), torch.rand(1, 3, 32, 32))


def test_invalid_level_is_rejected():
    with pytest.raises(ValueError, match=r"model.level=5 .*expected 3 \(r31\) or 4 \(r41\)"):
        tiny_model("lst", level=5)


def test_matrix_is_per_sample_and_depends_on_style(r41):
    content = torch.rand(1, 3, 64, 64).expand(2, -1, -1, -1)
    styles = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        matrix = r41.transformation_matrix(content, styles)
    assert matrix.shape == (2, 32, 32)
    assert not torch.allclose(matrix[0], matrix[1])


def test_matrix_is_what_the_transform_applies(r41):
    transform = r41.transform
    content, style = torch.randn(2, 512, 6, 5), torch.randn(2, 512, 4, 7)
    with torch.no_grad():
        matrix = transform.transformation_matrix(content, style)
        compressed = transform.compress(content - content.mean(dim=(2, 3), keepdim=True))
        expected = transform.unzip(torch.einsum("bij,bjhw->bihw", matrix, compressed))
        expected = expected + style.mean(dim=(2, 3), keepdim=True)
        assert torch.allclose(transform(content, style), expected, atol=1e-4)


def test_reference_setting_trains_only_the_transform():
    model = tiny_model("lst", train_encoder=False, train_decoder=False)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.transform.parameters()}
    optimizer = model.configure_optimizers()["optimizer"]
    assert sum(p.numel() for group in optimizer.param_groups for p in group["params"]) == 5_156_192


def test_lst_plus_trains_encoder_and_decoder(r41):
    assert all(p.requires_grad for p in r41.decoder.parameters())
    assert any(p.requires_grad for p in r41.encoder.parameters())
    assert not any(p.requires_grad for p in r41.loss_net.parameters())


def test_style_loss_sums_mean_and_gram_errors():
    # constant a vs 0: channel means differ by a (C entries), Gram entries by a^2*HW/(C*HW) (C^2 entries)
    a, channels = 1.5, 4
    output, target = torch.full((2, channels, 3, 5), a), torch.zeros(2, channels, 3, 5)
    expected = channels * a**2 + a**4
    assert torch.allclose(mean_gram_loss([output, output], [target, target]), torch.full((2,), 2 * expected))


def test_yaml_composes_with_the_paper_defaults():
    cfg = compose_train([*TINY, "model=lst"]).model
    assert (cfg.level, cfg.train_encoder, cfg.train_decoder, cfg.encoder.ceil_mode) == (4, True, True, False)
    assert (cfg.optimizer.lr, cfg.optimizer.lr_decay) == (1e-4, 1e-5)
    assert dict(cfg.loss_weights) == {"content": 1.0, "style": 0.02}


def test_short_overfit_lowers_weighted_loss():
    model = tiny_model("lst", optimizer={"lr": 1e-3})
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert set(model.losses(content, style).terms) == {f.name for f in fields(LSTLossWeights)}
    history = overfit(model, content, style, steps=3)
    assert history[-1] < history[0]
