"""MANet: part sizes, channel attention, sizes, the disentanglement gate and terms, E and a short overfit."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.models import MODEL_REGISTRY
from lottery_style.models.components.attention import ChannelAttention
from lottery_style.models.components.stats import mvn
from lottery_style.models.manet import MANet, MANetLossWeights, derangement
from tests.conftest import count, overfit, tiny_model

CONF = CONF_DIR / "model" / "manet.yaml"
TERMS = {f.name for f in fields(MANetLossWeights)}
OPEN, CLOSED = {"dis_gate": 1e30}, {"dis_gate": 0.0}


@pytest.fixture(scope="module")
def model() -> MANet:
    return tiny_model("manet")


def test_part_sizes_match_the_reference(model):
    assert count(model.encoder) == 3_505_740  # "+": relu4_1, the only level T takes
    frozen = tiny_model("manet", train_encoder=False)
    assert count(frozen.encoder) == 12_944_972 and frozen.loss_net is None  # the reference: relu5_1 for the losses
    assert count(model.transform) == 3_151_872
    assert count(model.decoder) == 3_505_219
    assert len(model.prunable_weights()["transform"]) == 12  # three blocks of four 1x1 convs


def test_channel_attention_rows_sum_to_one_and_mix_normalised_values():
    block = ChannelAttention(8)
    style = torch.randn(2, 8, 5, 7)
    weights = block.attention(style)
    assert weights.shape == (2, 8, 8)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 8))
    mixed = torch.einsum("bij,bin->bjn", weights, block.value(mvn(style)).flatten(2)).view_as(style)
    torch.testing.assert_close(block(style), style + block.output(mixed))


def test_non_square_sizes_of_multiples_of_8_are_accepted(model):
    content, style = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert model.stylize(content, style).shape == (1, 3, 40, 56)
        result = model.losses(content, style)
    assert result.stylized.shape == (1, 3, 40, 56)
    assert set(result.terms) == TERMS
    with pytest.raises(ValueError, match=r"divisible by 8.*style image of 36x32"):
        model.losses(content, torch.rand(1, 3, 36, 32))


def test_derangement_pairs_every_sample_with_another():
    order, partner = derangement(5, torch.device("cpu"))
    assert sorted(order.tolist()) == sorted(partner.tolist()) == list(range(5))
    assert (order != partner).all()


def terms_with_gate(model: MANet, gate: dict[str, float], content, style) -> dict[str, torch.Tensor]:
    model.cfg.dis_gate = gate["dis_gate"]
    try:
        with torch.no_grad():
            return model.losses(content, style).terms
    finally:
        model.cfg.dis_gate = 10.0


def test_dis_terms_are_reported_as_zero_while_the_gate_is_closed(model, pair):
    terms = terms_with_gate(model, CLOSED, *pair)
    assert set(terms) == TERMS
    assert torch.equal(terms["dis_content"], torch.zeros(2)) and torch.equal(terms["dis_style"], torch.zeros(2))


def test_gate_opens_below_the_weighted_content_plus_style(model, pair):
    terms = terms_with_gate(model, CLOSED, *pair)
    weighted = float(terms["content"].mean() + 5.0 * terms["style"].mean())
    assert (terms_with_gate(model, {"dis_gate": weighted * 0.99}, *pair)["dis_content"] == 0).all()
    assert (terms_with_gate(model, {"dis_gate": weighted * 1.01}, *pair)["dis_content"] > 0).all()


def test_dis_terms_measure_disagreement_across_the_batch(model, pair):
    content, style = pair
    distinct = terms_with_gate(model, OPEN, content, style)
    assert (distinct["dis_content"] > 0).all() and (distinct["dis_style"] > 0).all()
    # One style for the whole batch: the content image stylised "with every style" always looks the same.
    same_style = terms_with_gate(model, OPEN, content, style[:1].expand_as(style))
    assert same_style["dis_content"].max() <= 1e-6 * distinct["dis_content"].min()
    same_content = terms_with_gate(model, OPEN, content[:1].expand_as(content), style)
    assert same_content["dis_style"].max() <= 1e-6 * distinct["dis_style"].min()


def test_derangement_comes_from_the_seeded_torch_rng():
    draws = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        draws.append(torch.cat(derangement(8, torch.device("cpu"))))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_test_error_leaves_out_the_random_dis_terms(model, pair):
    model.cfg.dis_gate = 1e30
    try:
        errors = model.test_errors(*pair)
        with torch.no_grad():
            terms = model.losses(*pair).terms
    finally:
        model.cfg.dis_gate = 10.0
    torch.testing.assert_close(errors["E_content"], terms["content"] + terms["identity1"] + terms["identity2"])
    torch.testing.assert_close(errors["E"], errors["E_content"] + terms["style"])


def test_yaml_defaults_validate_against_the_schema():
    values = OmegaConf.load(CONF)
    assert list(values.pop("defaults")) == ["/manet_schema@_here_", "_self_"]
    cfg = OmegaConf.merge(MODEL_REGISTRY["manet"].schema(), values)  # the schema, its name from the registry
    assert cfg.name == "manet" and cfg.dis_gate == 10.0
    assert dict(cfg.loss_weights) == {
        "content": 1.0, "style": 5.0, "identity1": 50.0, "identity2": 1.0, "dis_content": 1.0, "dis_style": 1.0,
    }  # fmt: skip
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.lr_decay == 5e-5


def test_overfitting_one_batch_lowers_the_loss(pair):
    model = tiny_model("manet", train_encoder=False, optimizer={"lr": 1e-3})
    content, style = pair[0][:1], pair[1][:1]
    history = overfit(model, content, style, steps=4)
    with torch.no_grad():
        after = model.losses(content, style).terms
    assert model.weighted_loss(after) < history[0]
    assert set(after) == TERMS
