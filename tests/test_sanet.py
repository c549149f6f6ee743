"""SANet: part sizes, the style-attention block, sizes, alpha, batched losses, E and a short overfit."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.models import MODEL_REGISTRY
from lottery_style.models.components.attention import StyleAttention, attention_weights, softmax_attention
from lottery_style.models.components.stats import mean_std_loss, mse_per_sample, mvn
from lottery_style.models.sanet import SANet, SANetLossWeights
from tests.conftest import count, overfit, tiny_model

CONF = CONF_DIR / "model" / "sanet.yaml"
TERMS = {f.name for f in fields(SANetLossWeights)}


@pytest.fixture(scope="module")
def model() -> SANet:
    return tiny_model("sanet")


def test_part_sizes_match_the_reference(model):
    assert count(model.encoder) == 12_944_972  # normalised VGG to relu5_1, fixed 1x1 conv included
    assert count(model.transform) == 4_461_056
    assert count(model.decoder) == 3_505_219
    prunable = model.prunable_weights()["transform"]
    assert len(prunable) == 9  # 2 blocks x 4 one-by-one convs + the merge conv
    assert sum(p.numel() for p in prunable.values()) == 8 * 512 * 512 + 512 * 512 * 9


def test_attention_block_with_zero_output_conv_returns_its_input():
    block = StyleAttention(16)
    torch.nn.init.zeros_(block.output.weight)
    torch.nn.init.zeros_(block.output.bias)
    features = torch.randn(2, 16, 5, 7)
    assert torch.equal(block(features, features), features)


def test_attention_rows_sum_to_one_and_output_has_the_content_shape():
    block = StyleAttention(16)
    content, style = torch.randn(2, 16, 8, 12), torch.randn(2, 16, 6, 10)
    weights = block.attention(content, style)
    assert weights.shape == (2, 8 * 12, 6 * 10)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 96))
    assert block(content, style).shape == content.shape


def test_softmax_attention_is_a_convex_combination_of_style_values():
    query, key, value = torch.randn(1, 4, 6), torch.randn(1, 4, 9), torch.randn(1, 3, 9)
    logits = torch.einsum("bkn,bkm->bnm", query, key)
    expected = torch.einsum("bnm,bcm->bcn", logits.softmax(dim=-1), value)
    torch.testing.assert_close(softmax_attention(query, key, value), expected)
    torch.testing.assert_close(attention_weights(query, key), logits.softmax(dim=-1))


def test_non_square_input_keeps_its_shape(model):
    content, style = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        assert model.stylize(content, style).shape == (1, 3, 64, 96)
        result = model.losses(content, style)
    assert result.stylized.shape == (1, 3, 64, 96)
    assert set(result.terms) == TERMS
    assert all(t.shape == (1,) and torch.isfinite(t).all() for t in result.terms.values())


@pytest.mark.parametrize("call", ["stylize", "losses"])
def test_size_not_divisible_by_16_fails_clearly(model, call):
    with pytest.raises(ValueError, match=r"divisible by 16.*content image of 70x64"):
        getattr(model, call)(torch.rand(1, 3, 70, 64), torch.rand(1, 3, 64, 64))


def test_alpha_blends_with_the_content_identity_in_feature_space(model, pair):
    content, style = pair
    with torch.no_grad():
        c, s = model.encoder(content), model.encoder(style)
        styled = model.transform(c[3], c[4], s[3], s[4])
        identity = model.transform(c[3], c[4], c[3], c[4])
        torch.testing.assert_close(model.stylize(content, style), model.decoder(styled))
        torch.testing.assert_close(model.stylize(content, style, alpha=0.0), model.decoder(identity))
        blended = model.decoder(0.3 * styled + 0.7 * identity)
        torch.testing.assert_close(model.stylize(content, style, alpha=0.3), blended)


def plain_terms(model: SANet, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference computation written out call by call, without batching or reuse."""

    def decode(c: list[torch.Tensor], s: list[torch.Tensor]) -> torch.Tensor:
        return model.decoder(model.transform(c[3], c[4], s[3], s[4]))

    fc, fs = model.encoder(content), model.encoder(style)
    stylized, content_id, style_id = decode(fc, fs), decode(fc, fc), decode(fs, fs)
    out, out_cc, out_ss = (model.loss_features(image) for image in (stylized, content_id, style_id))
    tc, ts = model.loss_features(content), model.loss_features(style)
    return {
        "content": sum(mse_per_sample(mvn(out[i]), mvn(tc[i])) for i in (3, 4)),
        "style": mean_std_loss(out, ts),
        "identity1": mse_per_sample(content_id, content) + mse_per_sample(style_id, style),
        "identity2": sum(mse_per_sample(a, b) + mse_per_sample(x, y) for a, b, x, y in zip(out_cc, tc, out_ss, ts)),
    }


def test_batched_losses_equal_the_plain_computation(model, pair):
    with torch.no_grad():
        terms = model.losses(*pair).terms
        expected = plain_terms(model, *pair)
    for name in TERMS:
        torch.testing.assert_close(terms[name], expected[name], rtol=1e-4, atol=1e-5)


def test_frozen_encoder_as_loss_net_gives_the_same_terms(model, pair):
    frozen = tiny_model("sanet", train_encoder=False)
    assert frozen.loss_net is None and model.loss_net is not None
    for part in ("encoder", "transform", "decoder"):
        getattr(frozen, part).load_state_dict(getattr(model, part).state_dict())
    with torch.no_grad():
        plus_terms, frozen_terms = model.losses(*pair).terms, frozen.losses(*pair).terms
    for name in TERMS:
        torch.testing.assert_close(frozen_terms[name], plus_terms[name])


def test_test_error_groups_follow_the_paper(model, pair):
    errors = model.test_errors(*pair)
    with torch.no_grad():
        terms = model.losses(*pair).terms
    torch.testing.assert_close(errors["E_content"], terms["content"] + terms["identity1"] + terms["identity2"])
    torch.testing.assert_close(errors["E"], errors["E_content"] + terms["style"])


def test_yaml_defaults_validate_against_the_schema():
    values = OmegaConf.load(CONF)
    assert list(values.pop("defaults")) == ["/sanet_schema@_here_", "_self_"]
    cfg = OmegaConf.merge(MODEL_REGISTRY["sanet"].schema(), values)  # the schema, its name from the registry
    assert cfg.name == "sanet"
    assert dict(cfg.loss_weights) == {"content": 1.0, "style": 3.0, "identity1": 50.0, "identity2": 1.0}
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.lr_decay == 5e-5


def test_overfitting_one_batch_lowers_the_loss_and_the_identity_loss(pair):
    model = tiny_model("sanet", train_encoder=False, optimizer={"lr": 1e-3})
    content, style = pair[0][:1], pair[1][:1]
    with torch.no_grad():
        before = model.losses(content, style).terms
    history = overfit(model, content, style, steps=4)
    with torch.no_grad():
        after = model.losses(content, style).terms
    assert model.weighted_loss(after) < history[0]
    assert after["identity1"] < before["identity1"]
    assert set(after) == TERMS
