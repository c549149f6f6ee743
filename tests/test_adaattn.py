"""AdaAttN: parameter counts, the guarded std, shared subsampling, determinism, sizes and overfitting."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.models.adaattn import AdaAttNBlock, AdaAttNConfig, AdaAttNLossWeights, attention_normalise
from lottery_style.models.components.stats import mvn
from tests.conftest import overfit, tiny_model

CONF = CONF_DIR / "model" / "adaattn.yaml"
# Small enough that every attention subsamples style positions at 32 px
# (relu2_1 16x16, relu3_1 8x8, relu4_1 4x4, relu5_1 2x2).
SUBSAMPLED = {"max_sample_relu3": 30, "max_sample_relu45": 3, "max_sample_local": 30}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_and_parts() -> None:
    model = tiny_model("adaattn")
    t = model.transform
    assert (count(t.a3), count(t.a4), count(t.a5), count(t.merge)) == (468_096, 2_107_776, 4_599_168, 2_359_808)
    assert count(t) == 9_534_848
    assert count(model.decoder) == 4_095_043
    assert count(model.encoder) == 12_944_972
    # Nothing trainable outside the parts the pruning engine groups (the loss VGG is frozen).
    parts = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert parts == {"encoder", "loss_net", "transform", "decoder"}
    assert not any(p.requires_grad for p in model.loss_net.parameters())


def test_yaml_matches_the_schema_and_the_reference_weights() -> None:
    values = OmegaConf.load(CONF)
    values.pop("defaults")
    merged = OmegaConf.merge(OmegaConf.structured(AdaAttNConfig), values)  # raises on unknown keys or types
    assert dict(merged.loss_weights) == {"content": 0.0, "global_style": 10.0, "local": 3.0}
    assert (merged.max_sample_relu3, merged.max_sample_relu45, merged.max_sample_local) == (4096, 65_536, 4096)
    assert OmegaConf.to_container(merged) == OmegaConf.to_container(OmegaConf.structured(AdaAttNConfig))


def test_std_is_guarded_when_all_style_positions_are_equal() -> None:
    torch.manual_seed(0)
    eps = AdaAttNConfig.eps
    block = AdaAttNBlock(channels=8, key_channels=6, max_sample=100, eps=eps).double()  # exact enough to see S
    content = torch.randn(1, 8, 4, 4, dtype=torch.double, requires_grad=True)
    style = (torch.rand(1, 8, 1, 1, dtype=torch.double) + 1).expand(1, 8, 5, 5).clone().requires_grad_()
    content_key = torch.randn(1, 6, 4, 4, dtype=torch.double, requires_grad=True)
    style_key = torch.randn(1, 6, 5, 5, dtype=torch.double, requires_grad=True)
    out = block(content, style, content_key, style_key, seed=0)
    assert out.isfinite().all()
    # Every value equals h(style) at one position, so M = h(style) and S is the guard sqrt(eps), never 0.
    mean = block.value(style)[:, :, :1, :1]
    std = (out - mean) / mvn(content)
    torch.testing.assert_close(std, torch.full_like(std, math.sqrt(eps)), rtol=1e-6, atol=0.0)
    out.square().sum().backward()
    for tensor in [content, style, content_key, style_key, *block.parameters()]:
        assert tensor.grad is not None and tensor.grad.isfinite().all()


@pytest.mark.parametrize("max_sample", [7, 30])
def test_keys_and_values_are_subsampled_at_the_same_positions(max_sample: int) -> None:
    """Self-attention with a sharp query: a content position gets its own value back iff its key was sampled.

    With keys and values taken at the same positions exactly ``max_sample``
    positions reproduce themselves; a mismatch would reproduce almost none.
    """
    torch.manual_seed(0)
    block = AdaAttNBlock(channels=32, key_channels=32, max_sample=max_sample, eps=1e-5)
    with torch.no_grad():
        for conv, scale in ((block.query, 100.0), (block.key, 1.0), (block.value, 1.0)):
            conv.weight.copy_(scale * torch.eye(32).view(32, 32, 1, 1))
            conv.bias.zero_()
    features = torch.nn.functional.normalize(torch.randn(1, 32, 6, 6), dim=1)  # x.x = 1 > x.y at every other y
    out = block(torch.zeros_like(features), features, features, features, seed=3)  # mvn(0) = 0: out = M
    reproduced = torch.isclose(out, features, atol=1e-4).all(dim=1).sum().item()
    assert reproduced == max_sample < 36


def test_subsampling_depends_only_on_the_seed() -> None:
    torch.manual_seed(0)
    content, query, key, value = (torch.randn(1, 4, 6, 6) for _ in range(4))
    same = [attention_normalise(content, query, key, value, 10, seed, 1e-5) for seed in (1, 1, 2)]
    assert torch.equal(same[0], same[1])
    assert not torch.allclose(same[0], same[2])


def test_eval_is_deterministic_and_training_draws_seeds_from_torch() -> None:
    model = tiny_model("adaattn", **SUBSAMPLED)
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        train_runs = []
        for seed in (5, 5, 6):
            torch.manual_seed(seed)
            train_runs.append(model.losses(content, style).terms["local"])
        model.eval()
        eval_runs = [model.stylize(content, style) for _ in range(2)]
        errors = [model.test_errors(content, style)["E"] for _ in range(2)]
    assert torch.equal(train_runs[0], train_runs[1])  # a seeded run is reproducible
    assert not torch.equal(train_runs[0], train_runs[2])  # a new subset each iteration
    assert torch.equal(eval_runs[0], eval_runs[1])
    assert torch.equal(errors[0], errors[1])


def test_non_square_forward_alpha_and_size_error() -> None:
    model = tiny_model("adaattn").eval()
    torch.manual_seed(2)
    content, style = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 48, 80)
    small_content, small_style = content[..., :32, :32], style[..., :32, :32]
    with torch.no_grad():
        assert model.stylize(content, style).shape == (1, 3, 64, 96)
        own = model.stylize(small_content, small_content)
        torch.testing.assert_close(model.stylize(small_content, small_style, alpha=0.0), own)
    with pytest.raises(ValueError, match=r"divisible by 16, got a content image of 70x64"):
        model.stylize(torch.rand(1, 3, 70, 64), style)


def test_overfitting_one_batch_lowers_the_loss() -> None:
    # Frozen encoder (it is then the loss VGG): the cheaper path; "+" mode runs in the determinism test.
    model = tiny_model("adaattn", train_encoder=False)
    torch.manual_seed(3)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    history = overfit(model, content, style, steps=4)
    assert history[-1] < history[0]
    terms = model.losses(content, style).terms
    assert set(terms) == {f.name for f in dataclasses.fields(AdaAttNLossWeights)}
    assert all(value.shape == (1,) for value in terms.values())
