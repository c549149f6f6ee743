"""Slim models from channel tickets (`lottery-style export ROUND --slim`): smaller convs, the same stylized output.

Tolerance: max abs diff <= 1e-4 between the slim model's output and the masked ticket's on the same input
tensors (the sample set's real images, at two sizes): the slim convs sum fewer terms, all of which the masked
ticket also sums, in another order. Runs are at test size (debug=tiny, 2 steps per round), one round at 20%.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from safetensors import safe_open

from lottery_style.cli import main
from lottery_style.core.config import PART_PREFIXES
from lottery_style.data.sample import sample_dirs
from lottery_style.engine.cost import counted_flops, parameter_counts, stylization_flops
from lottery_style.engine.lottery import LotteryRun
from lottery_style.models import MODEL_REGISTRY
from lottery_style.models.adain import AdaIN
from lottery_style.tickets.loading import TicketError, load_ticket
from lottery_style.tickets.paths import round_dir
from lottery_style.tickets.slim_file import SLIM_FORMAT, read_slim_file, write_slim_file
from lottery_style.tools.slim import slim_ticket
from tests.conftest import TINY, compose_train, tiny_model
from tests.test_cli_errors import one_error_line
from tests.test_docs import block_commands, shell_blocks
from tests.test_onnx_export import (
    PAIRS,
    SIZES,
    needs_deploy_extra,
    onnx_session,
    onnx_stylize,
    sample_image,
    saved_round,
)

TOLERANCE = 1e-4
CHANNEL = ["pruning.granularity=channel", "pruning.rounds=1", "training.steps=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny AdaIN and SANet channel runs (round_01: 20% of the channels pruned) and a weight-granularity AdaIN run."""
    found = {}
    for name, extra in (("adain", CHANNEL), ("sanet", CHANNEL), ("weight", ["pruning.rounds=1", "training.steps=2"])):
        out = tmp_path_factory.mktemp(f"{name}_run")
        model = "adain" if name == "weight" else name
        LotteryRun(compose_train([*TINY, f"model={model}", *extra], out), out).run()
        found[name] = out
    return found


def sample_cases(multiple: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, float]]:
    """(size, content, style, alpha) of every sample pair at both sizes, the first pair at alpha 1, the second at 0.6."""
    for size in SIZES:
        for (content_name, style_name), alpha in zip(PAIRS, (1.0, 0.6)):
            yield size, sample_image("content", content_name, size, multiple), sample_image("style", style_name, size, multiple), alpha


def max_diff_on_samples(model, reference) -> float:
    """The largest max abs diff of ``model`` against ``reference`` over the sample pairs, both sizes, alpha 1 and 0.6."""
    worst = 0.0
    for _, content, style, alpha in sample_cases(reference.size_multiple):
        with torch.inference_mode():
            expected = reference.stylize(content, style, alpha=alpha)
            got = model.stylize(content, style, alpha=alpha)
        assert got.shape == expected.shape == content.shape
        worst = max(worst, (got - expected).abs().max().item())
    return worst


def narrowed(name: str, runs) -> dict[str, tuple[int, int]]:
    """The convs the slim model of ``name``'s round 1 narrows, with their slim (out, in) channels."""
    slim = slim_ticket(round_dir(runs[name], 1))
    dense = slim.parts.state
    return {conv: kept for conv, kept in slim.channels.items() if kept != tuple(dense[conv].shape[:2])}


@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_the_slim_model_stylizes_as_the_masked_ticket_on_real_images_at_two_sizes(name: str, runs) -> None:
    ticket = round_dir(runs[name], 1)
    masked, _ = load_ticket(ticket)
    slim = slim_ticket(ticket)
    params = sum(p.numel() for p in slim.model.parameters())
    assert params < sum(p.numel() for p in masked.parameters())
    for conv, (out, into) in slim.channels.items():
        assert slim.model.get_parameter(conv).shape[:2] == (out, into)
    assert max_diff_on_samples(slim.model, masked) <= TOLERANCE


def test_sanet_slims_its_attention_values_and_merge_and_keeps_query_key_and_output_channels(runs) -> None:
    """The attention's value conv loses channels and the output conv's input follows; query, key and the output
    conv's own channels (paired in QᵀK, added to the content) stay whole."""
    convs = narrowed("sanet", runs)
    for level in (4, 5):
        value_out = convs[f"transform.attention{level}.value.weight"][0]
        assert value_out < 512 and convs[f"transform.attention{level}.output.weight"] == (512, value_out)
        assert f"transform.attention{level}.query.weight" not in convs and f"transform.attention{level}.key.weight" not in convs
    assert convs["transform.merge.1.weight"][0] == convs["decoder.body.1.weight"][1] < 512


@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_the_slim_models_flops_are_flopcountermodes_count_and_the_rounds_flops_kept(name: str, runs) -> None:
    ticket = round_dir(runs[name], 1)
    record = json.loads((ticket / "metrics.json").read_text())
    size = int(OmegaConf.load(ticket / "config.yaml").data.eval_size)
    slim = slim_ticket(ticket).model
    flops = stylization_flops(slim, size, torch.device("cpu"))
    content, style = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    assert flops == counted_flops(lambda: slim.stylize(content, style)) == record["flops_kept"] < record["flops"]


@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_export_slim_writes_a_state_dict_and_its_slim_config_that_stylize_takes(name: str, runs, tmp_path: Path) -> None:
    ticket = round_dir(runs[name], 1)
    path = tmp_path / "slim.safetensors"
    assert main(["export", str(ticket), "--slim", "--out", str(path)]) == 0
    with safe_open(str(path), framework="pt") as handle:  # any safetensors reader opens it
        assert handle.metadata()["format"] == SLIM_FORMAT
        assert set(handle.keys()) == {n for n in slim_ticket(ticket).model.state_dict() if n.startswith(PART_PREFIXES)}
    saved = read_slim_file(path)
    assert saved is not None
    slim = slim_ticket(ticket)
    assert saved["format"] == SLIM_FORMAT and saved["model"]["name"] == name
    assert {conv: tuple(kept) for conv, kept in saved["channels"].items()} == slim.channels
    for conv, (out, into) in slim.channels.items():
        assert saved["state_dict"][conv].shape[:2] == (out, into)
    rebuilt, _ = load_ticket(path)  # the file alone: no ticket, no masks
    masked, _ = load_ticket(ticket)
    assert max_diff_on_samples(rebuilt, masked) <= TOLERANCE
    # the console script's stylize: same files, pixels equal up to one 8-bit step where a value sits on a rounding edge
    content_dir, style_dir = sample_dirs()
    outputs = {}
    for source in (ticket, path):
        out = tmp_path / f"out_{Path(source).name}"
        args = ["stylize", "--ticket", str(source), "--content", str(content_dir / "chelsea.png")]
        assert main([*args, "--style", str(style_dir / "brick.png"), "--out", str(out), "--size", "64"]) == 0
        outputs[source] = {png.name: np.asarray(Image.open(png), dtype=np.int16) for png in out.glob("*.png")}
    assert list(outputs[ticket]) == list(outputs[path]) == ["chelsea__brick.png"]
    assert np.abs(outputs[ticket]["chelsea__brick.png"] - outputs[path]["chelsea__brick.png"]).max() <= 1


@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_export_slim_onnx_runs_in_onnx_runtime_as_the_masked_ticket_at_two_sizes(name: str, runs, tmp_path: Path) -> None:
    needs_deploy_extra()
    ticket = round_dir(runs[name], 1)
    path = tmp_path / "slim.onnx"
    assert main(["export", str(ticket), "--slim", "--format", "onnx", "--out", str(path)]) == 0
    masked, _ = load_ticket(ticket)
    session = onnx_session(path)
    slim_params = parameter_counts(slim_ticket(ticket).model)["params_total"]
    assert 4 * slim_params <= path.stat().st_size < 4 * parameter_counts(masked)["params_total"]  # fp32 weights
    for size, content, style, alpha in sample_cases(masked.size_multiple):
        with torch.inference_mode():
            expected = masked.stylize(content, style, alpha=alpha)
        diff = (onnx_stylize(session, content, style, alpha) - expected).abs().max().item()
        assert diff <= TOLERANCE, f"{name}, {size} px, alpha {alpha}: max abs diff {diff:.2e}"


# ------------------------------------------------------------------ refusals
def test_a_weight_granularity_ticket_is_refused_in_one_line(runs, tmp_path: Path, capsys) -> None:
    ticket = round_dir(runs["weight"], 1)
    out = tmp_path / "slim.safetensors"
    line = one_error_line(capsys, ["export", str(ticket), "--slim", "--out", str(out)])
    assert f"cannot slim {ticket} (adain): it is a weight-granularity ticket" in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["lst", "manet", "mccnet", "adaattn"])
def test_a_model_that_cannot_hold_channel_tickets_is_refused_naming_why(name: str, tmp_path: Path, capsys) -> None:
    folder = saved_round(tmp_path / "run" / "round_00", tiny_model(name))
    line = one_error_line(capsys, ["export", str(folder), "--slim", "--out", str(tmp_path / "slim.safetensors")])
    assert line.endswith(f"cannot slim {folder} ({name}): {MODEL_REGISTRY[name].module.channel_refusal}")


def test_a_model_whose_links_miss_a_reader_is_refused_not_written(runs, tmp_path: Path, monkeypatch) -> None:
    """If channel_links forgot that a conv reads a pruned channel, the narrowed model cannot run: refused."""
    ticket = round_dir(runs["adain"], 1)
    source = next(conv for conv in narrowed("adain", runs) if conv.startswith("decoder."))
    links = AdaIN.channel_links
    monkeypatch.setattr(AdaIN, "channel_links", lambda self: {k: v for k, v in links(self).items() if k != source})
    with pytest.raises(TicketError, match=r"^cannot slim .*: the narrowed model does not run \(") as error:
        slim_ticket(ticket)
    assert len(str(error.value).splitlines()) == 1


def test_a_slim_file_with_an_impossible_channel_count_is_refused_in_one_line(runs, tmp_path: Path, capsys) -> None:
    path = tmp_path / "slim.safetensors"
    assert main(["export", str(round_dir(runs["adain"], 1)), "--slim", "--out", str(path)]) == 0
    saved = read_slim_file(path)
    assert saved is not None
    saved["channels"]["decoder.body.1.weight"] = [1024, 512]
    write_slim_file(path, saved["model"], saved["channels"], saved["state_dict"], saved["info"])
    content_dir, style_dir = sample_dirs()
    images = ["--content", str(content_dir / "chelsea.png"), "--style", str(style_dir / "brick.png")]
    line = one_error_line(capsys, ["stylize", "--ticket", str(path), *images, "--out", str(tmp_path / "out")])
    assert "slim config gives decoder.body.1.weight 1024 out and 512 in channels: expected 1..256 out" in line


# ------------------------------------------------------------------ the docs' four commands
DEPLOY_PAGE = Path(__file__).resolve().parent.parent / "docs/deploy.md"
TEST_SIZE = ["debug=tiny", "pruning.rewind_step=2"]  # the quickstart rewinds to step 500 of 600; tiny trains 4


def test_the_deploy_pages_four_commands_run_end_to_end_at_test_size(tmp_path: Path, monkeypatch) -> None:
    """docs/deploy.md's first block, run as a user would in a fresh folder (training at test size), with two
    sample photos in photos/ and a sample style as art.jpg; ``<hash>`` is the run folder the first command made."""
    block = shell_blocks(DEPLOY_PAGE.read_text(), "docs/deploy.md")[0]
    commands = [list(command.words) for command in block_commands(block)]
    assert [words[:2] for words in commands] == [
        ["lottery-style", "experiment=quickstart"], ["lottery-style", "export"], ["lottery-style", "export"],
        ["lottery-style", "stylize"],
    ]  # fmt: skip
    content_dir, style_dir = sample_dirs()
    (tmp_path / "photos").mkdir()
    for name in ("chelsea", "coffee"):
        shutil.copy(content_dir / f"{name}.png", tmp_path / "photos")
    Image.open(style_dir / "brick.png").convert("RGB").save(tmp_path / "art.jpg")
    monkeypatch.chdir(tmp_path)
    for index, words in enumerate(commands):
        args = [*words[1:], *TEST_SIZE] if index == 0 else words[1:]
        if index:
            (run,) = Path("outputs/quickstart").glob("adain-imp-*")
            args = [arg.replace("outputs/quickstart/adain-imp-placeholder", str(run)) for arg in args]
        command = [sys.executable, "-m", "lottery_style", *args]
        result = subprocess.run(command, capture_output=True, check=False, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(words)}: {result.stderr[-2000:]}"
    record = json.loads((run / "round_03" / "metrics.json").read_text())
    assert record["granularity"] == "channel" and record["channel_sparsity"] == record["sparsity"] > 0.45
    slim, _ = load_ticket("adain-slim.safetensors")
    assert parameter_counts(slim)["params_total"] < record["params_total"]
    assert Path("adain-slim.onnx").stat().st_size > 0
    assert sorted(png.name for png in Path("stylized").glob("*.png")) == ["chelsea__art.png", "coffee__art.png"]
