"""Channel granularity (pruning.granularity=channel): whole filters and biases, fixed channels, every method.

Mask properties are exact (counts, whole channels, nesting), so they hold on
any machine; runs are at test size (debug=tiny) and their checks recompute
what they assert from what the run stored.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from lottery_style.core.config import ConfigError
from lottery_style.engine.cost import counted_flops, stylization_flops
from lottery_style.engine.granularity import channel_layout
from lottery_style.engine.lottery import LotteryRun
from lottery_style.engine.validation import check_config
from lottery_style.pruning.channels import ChannelLayout, ChannelPruner
from lottery_style.pruning.early_bird import EarlyBird
from lottery_style.pruning.slimming import narrow_convs, slim_state
from lottery_style.tickets.paths import INSTABILITY_SUMMARY, TICKET_FILE, round_dir
from lottery_style.tickets.storage import load_round
from lottery_style.tools.report import error_figure, load_runs, pruned_unit
from lottery_style.tools.report_instability import instability_figure, instability_records
from tests.conftest import TINY, compose_train, tiny_model

CHANNEL = ["pruning.granularity=channel"]


def _layout() -> ChannelLayout:
    """Three convs of different widths and scales, the last one fixed (an RGB output), chained."""
    convs = {"a.weight": (8, 3, 3, 3), "b.weight": (16, 8, 3, 3), "c.weight": (3, 16, 1, 1)}
    biases = {name: name.replace("weight", "bias") for name in convs}
    links = {"a.weight": ["b.weight"], "b.weight": ["c.weight"]}
    return ChannelLayout(convs, tuple(convs), biases, frozenset({"c.weight"}), links)


def _weights(layout: ChannelLayout, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=gen) * (1 + i) for i, (name, shape) in enumerate(layout.convs.items())}


def _whole(layout: ChannelLayout, masks: dict[str, torch.Tensor]) -> None:
    """Every filter is all kept or all pruned, and its bias entry goes with it."""
    for name in layout.scope:
        per_filter = masks[name].reshape(masks[name].shape[0], -1)
        assert bool((per_filter.all(1) | ~per_filter.any(1)).all()), name
        assert torch.equal(masks[layout.biases[name]], per_filter.all(1)), name


# ------------------------------------------------------------------ unit rules
def test_channel_masks_are_whole_filters_and_biases_nested_with_exact_counts() -> None:
    layout = _layout()
    pruner, weights = ChannelPruner(layout), _weights(layout)
    masks = pruner.dense(weights)
    pool_channels = 8 + 16
    for r in range(1, 5):
        target = 1 - 0.8**r
        new = pruner.magnitude(weights, masks, target, layerwise=False, tie_seed=r)
        _whole(layout, new)
        assert all(bool((new[n] <= masks[n]).all()) for n in new), "a pruned channel came back"
        assert pool_channels - sum(pruner.counts(new)[n] for n in layout.pool) == round(target * pool_channels)
        assert pruner.sparsity(new) == pytest.approx(round(target * pool_channels) / pool_channels, abs=1e-12)
        assert bool(new["c.weight"].all()) and bool(new["c.bias"].all()), "the fixed conv lost a channel"
        masks = new


def test_layerwise_channel_pruning_is_li_et_al_smallest_l1_filters_per_layer() -> None:
    layout = _layout()
    pruner, weights = ChannelPruner(layout), _weights(layout)
    masks = pruner.magnitude(weights, pruner.dense(weights), 0.5, layerwise=True, tie_seed=0)
    for name in layout.pool:
        l1 = weights[name].abs().flatten(1).sum(1)
        kept = masks[name].flatten(1).all(1)
        assert int((~kept).sum()) == round(0.5 * kept.numel())
        assert l1[~kept].max() < l1[kept].min()


def test_global_channel_ranking_compares_filters_with_their_own_layer() -> None:
    """A layer whose weights are all 100x smaller keeps its share: scores are normalised per layer."""
    layout = _layout()
    pruner, weights = ChannelPruner(layout), _weights(layout)
    scaled = {**weights, "b.weight": weights["b.weight"] / 100}
    plain = pruner.magnitude(weights, pruner.dense(weights), 0.5, layerwise=False, tie_seed=0)
    shrunk = pruner.magnitude(scaled, pruner.dense(scaled), 0.5, layerwise=False, tie_seed=0)
    assert all(torch.equal(plain[n], shrunk[n]) for n in plain)
    assert pruner.counts(shrunk)["b.weight"] > 0


def test_random_channels_keep_the_per_layer_channel_counts_within_the_survivors() -> None:
    layout = _layout()
    pruner, weights = ChannelPruner(layout), _weights(layout)
    first = pruner.magnitude(weights, pruner.dense(weights), 0.3, layerwise=False, tie_seed=0)
    imp = pruner.magnitude(weights, first, 0.6, layerwise=False, tie_seed=0)
    random = pruner.random_like(pruner.counts(imp), first, torch.Generator().manual_seed(3))
    _whole(layout, random)
    assert pruner.counts(random) == pruner.counts(imp)
    assert all(bool((random[n] <= first[n]).all()) for n in random)
    shuffled = pruner.shuffle(imp, torch.Generator().manual_seed(4))
    _whole(layout, shuffled)
    assert pruner.counts(shuffled) == pruner.counts(imp)


def test_weight_sparsity_counts_pruned_filters_biases_and_the_dead_slices_that_read_them() -> None:
    layout = _layout()
    pruner = ChannelPruner(layout)
    channels = {"a.weight": torch.tensor([False, False, True, True, True, True, True, True]),
                "b.weight": torch.ones(16, dtype=torch.bool), "c.weight": torch.ones(3, dtype=torch.bool)}  # fmt: skip
    channels["b.weight"][:4] = False
    masks = layout.masks(channels)
    # a: 2 filters of 27 + 2 biases; b: 4 filters of 72 + 4 biases, and the 12 others' 2 dead input slices of 9;
    # c: the 3 filters' 4 dead input slices of 1
    pruned = 2 * 27 + 2 + 4 * 72 + 4 + 12 * 2 * 9 + 3 * 4
    total = 8 * 27 + 8 + 16 * 72 + 16 + 3 * 16 + 3
    assert pruner.record(masks)["weight_sparsity"] == pytest.approx(pruned / total, abs=1e-12)
    assert pruner.record(masks)["channel_sparsity"] == 6 / 24
    assert layout.kept_channels(masks) == {"a.weight": (6, 3), "b.weight": (12, 6), "c.weight": (3, 12)}


def test_partial_channel_masks_are_refused() -> None:
    layout = _layout()
    pruner, weights = ChannelPruner(layout), _weights(layout)
    masks = pruner.dense(weights)
    masks["a.weight"][0, 0, 0, 0] = False
    with pytest.raises(ValueError, match="not whole channels"):
        pruner.counts(masks)


# ------------------------------------------------------------------ the models
def test_sanet_never_prunes_its_attention_pairs_residuals_and_rgb_output() -> None:
    model = tiny_model("sanet")
    names = [n for group in model.prunable_weights().values() for n in group]
    layout = channel_layout(model, names)
    pruner = ChannelPruner(layout)
    weights = dict(model.named_parameters())
    masks = pruner.magnitude(weights, pruner.dense(weights), 0.9, layerwise=True, tie_seed=0)
    fixed = {f"transform.attention{level}.{conv}.weight" for level in (4, 5) for conv in ("query", "key", "output")}
    fixed |= {model.decoder_convs()[-1], "encoder.body.29.weight", "encoder.body.42.weight"}  # relu4_1, relu5_1
    assert fixed == set(layout.fixed)
    for name in fixed:
        assert bool(masks[name].all()), name
    assert pruner.counts(masks)["transform.attention4.value.weight"] == round(0.1 * 512)


def test_a_model_channel_pruning_cannot_keep_safe_is_refused_in_one_line_before_building() -> None:
    cfg = compose_train([*TINY, *CHANNEL, "model=manet"])
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert str(error.value).startswith("pruning.granularity=channel is refused for model manet: ")
    assert len(str(error.value).splitlines()) == 1
    check_config(compose_train([*TINY, *CHANNEL, "model=sanet"]))  # SANet says which channels stay


# ----------------------------------------------------------------------- FLOPs
def test_stylization_flops_are_flopcountermodes_count_of_the_same_layers_by_hand() -> None:
    model = tiny_model("adain").eval()
    flops = stylization_flops(model, 32, torch.device("cpu"))
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        features = [model.encoder.body(image) for image in (content, style)]  # AdaIN itself is no matmul
        model.decoder.body(features[0])
    assert flops == counter.get_total_flops() > 0


def test_the_slim_state_is_a_physically_smaller_copy_that_computes_the_same_with_fewer_flops() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    convs = {"0.weight": (8, 3, 3, 3), "2.weight": (4, 8, 3, 3)}
    layout = ChannelLayout(convs, ("0.weight",), {"0.weight": "0.bias"}, frozenset(), {"0.weight": ["2.weight"]})
    masks = layout.masks({"0.weight": torch.tensor([True, False, True, True, False, True, False, True])})
    with torch.no_grad():
        net[0].weight.mul_(masks["0.weight"])
        net[0].bias.mul_(masks["0.bias"])
    state = slim_state(net.state_dict(), layout, masks)
    assert state["0.weight"].shape == (5, 3, 3, 3) and state["0.bias"].shape == (5,) and state["2.weight"].shape == (4, 5, 3, 3)
    slim = copy.deepcopy(net)
    narrow_convs(slim, layout.kept_channels(masks))
    slim.load_state_dict(state)
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (slim(image) - net(image)).abs().max() <= 1e-5
    counted = counted_flops(lambda: slim(image))
    assert counted_flops(lambda: functional_call(net, state, (image,))) == counted < counted_flops(lambda: net(image))
    assert counted == 2 * 16 * 16 * 9 * (3 * 5 + 5 * 4)  # FlopCounterMode's convs: 2 x positions x kernel x in x out


# ------------------------------------------------------------------------ runs
def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IMP at channel granularity with every control and analysis as a branch, at test size."""
    out = tmp_path_factory.mktemp("channel")
    branches = "[random_prune,random_reinit,oneshot,snip,synflow_shuffled,instability]"
    cfg = compose_train([*TINY, *CHANNEL, "pruning.rounds=2", f"pruning.branches={branches}"], output_dir=out)
    check_config(cfg)
    LotteryRun(cfg, out).run()
    return out


def test_imp_channel_masks_are_whole_nested_and_their_channels_output_exact_zeros(channel_run: Path) -> None:
    model = tiny_model("adain")
    layout = channel_layout(model, [n for group in model.prunable_weights().values() for n in group])
    previous = None
    for index in range(3):
        weights, masks = load_round(round_dir(channel_run, index))
        _whole(layout, masks)
        if previous is not None:
            assert all(bool((masks[n] <= previous[n]).all()) for n in masks)
        previous = masks
    # after 4 Adam steps the pruned filters and biases are exactly zero, so the channels output exactly zero
    model.load_state_dict(weights, strict=False)
    conv = model.decoder.body[5]
    pruned = ~masks["decoder.body.5.bias"]
    assert bool(pruned.any())
    outputs = []
    handle = conv.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    with torch.no_grad():
        model.stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    handle.remove()
    assert bool((outputs[0][:, pruned] == 0).all()) and bool((outputs[0][:, ~pruned] != 0).any())


def test_controls_keep_imps_per_layer_channel_counts_and_random_reinit_its_masks(channel_run: Path) -> None:
    model = tiny_model("adain")
    pruner = ChannelPruner(channel_layout(model, [n for group in model.prunable_weights().values() for n in group]))
    for index in (1, 2):
        _, imp = load_round(round_dir(channel_run, index))
        _, random = load_round(round_dir(channel_run / "branches" / "random_prune", index))
        _, reinit = load_round(round_dir(channel_run / "branches" / "random_reinit", index))
        assert pruner.counts(random) == pruner.counts(imp)
        assert any(not torch.equal(random[n], imp[n]) for n in imp)
        assert all(torch.equal(reinit[n], imp[n]) for n in imp)


@pytest.mark.parametrize("branch", ["oneshot", "snip", "synflow_shuffled"])
def test_every_method_finishes_at_channel_granularity_with_the_scheduled_channel_count(
    channel_run: Path, branch: str
) -> None:
    imp = _metrics(round_dir(channel_run, 2))
    record = _metrics(round_dir(channel_run / "branches" / branch, 2))
    assert record["granularity"] == "channel"
    assert record["channel_sparsity"] == record["sparsity"] == imp["sparsity"]


def test_the_instability_analysis_runs_on_channel_masks(channel_run: Path) -> None:
    records = json.loads((channel_run / "branches" / "instability" / INSTABILITY_SUMMARY).read_text())
    assert [r["sparsity"] for r in records] == [_metrics(round_dir(channel_run, i))["sparsity"] for i in range(3)]


def test_the_report_axis_of_a_channel_run_counts_channels(channel_run: Path) -> None:
    imp = load_runs([channel_run])[:1]
    as_weights = replace(imp[0], rows=[{**row, "granularity": "weight"} for row in imp[0].rows])
    for runs, unit in ((imp, "channels"), ([as_weights], "weights"), ([*imp, as_weights], "weights or channels")):
        assert pruned_unit(runs) == unit
        assert error_figure({"imp": runs}).axes[0].get_xlabel() == f"{unit} remaining (%, log scale)"
    by_sparsity = instability_figure(instability_records(imp), unit=pruned_unit(imp)).axes[0]
    assert by_sparsity.get_xlabel() == "channels remaining (%, log scale)"


def test_every_round_records_its_cost_and_both_sparsities(channel_run: Path) -> None:
    model = tiny_model("adain")
    dense_flops = stylization_flops(model, 32, torch.device("cpu"))
    for index in range(3):
        folder = round_dir(channel_run, index)
        record = _metrics(folder)
        assert record["flops"] == dense_flops
        assert record["file_bytes"] == (folder / TICKET_FILE).stat().st_size
        assert record["params_total"] == sum(p.numel() for part in (model.encoder, model.decoder) for p in part.parameters())
        assert record["weight_sparsity"] >= record["channel_sparsity"] * (index > 0)
        assert (record["flops_kept"] < record["flops"]) == (index > 0)


def test_early_bird_draws_channel_tickets(tmp_path: Path) -> None:
    cfg = compose_train([*TINY, *CHANNEL, "pruning=early_bird", "pruning.rounds=1"], output_dir=tmp_path)
    LotteryRun(cfg, tmp_path).run()
    model = tiny_model("adain")
    layout = channel_layout(model, [n for group in model.prunable_weights().values() for n in group])
    _, masks = load_round(round_dir(tmp_path, 1))
    _whole(layout, masks)
    assert _metrics(round_dir(tmp_path, 1))["channel_sparsity"] == _metrics(round_dir(tmp_path, 1))["sparsity"] > 0


def test_weight_granularity_records_flops_kept_equal_to_flops(tmp_path: Path) -> None:
    cfg = compose_train([*TINY, "pruning.rounds=1"], output_dir=tmp_path)
    LotteryRun(cfg, tmp_path).run()
    record = _metrics(round_dir(tmp_path, 1))
    assert record["granularity"] == "weight" and record["flops_kept"] == record["flops"]
    assert record["weight_sparsity"] == record["sparsity"]


def test_early_bird_distance_counts_channels_whatever_their_filter_size() -> None:
    """You et al. 2020 compare channel masks: one channel changed in a wide layer is as far as one in a narrow layer."""
    layout = ChannelLayout(convs={"wide.weight": (4, 64, 3, 3), "narrow.weight": (4, 1, 1, 1)}, scope=("wide.weight", "narrow.weight"))
    pruner = ChannelPruner(layout)
    kept = {"wide.weight": torch.ones(4, dtype=torch.bool), "narrow.weight": torch.ones(4, dtype=torch.bool)}
    start = layout.masks(kept)
    distances = []
    for layer in kept:
        changed = {**kept, layer: torch.tensor([False, True, True, True])}
        tracker = EarlyBird(target=0.1, threshold=0.5, window=1)
        tracker.observe(0, start, pruner.units(start))
        tracker.observe(1, layout.masks(changed), pruner.units(layout.masks(changed)))
        distances.append(tracker.distances[-1])
    assert distances == [1 / 8, 1 / 8]
    weight_counted = EarlyBird(target=0.1, threshold=0.5, window=1)
    weight_counted.observe(0, start)
    weight_counted.observe(1, layout.masks({**kept, "wide.weight": torch.tensor([False, True, True, True])}))
    assert weight_counted.distances[-1] == pytest.approx(576 / (4 * 576 + 4))  # by weights the wide channel dominates
