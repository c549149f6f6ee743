"""`lottery-style export --format onnx`: ONNX Runtime computes what `stylize` computes, at two sizes, on real images.

Tolerance: max abs diff <= 1e-4 between ONNX Runtime's output and the PyTorch model's on the same input tensors
(outputs in [0, 1]-ish, computed in fp32 by two libraries whose kernels sum in different orders).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lottery_style.cli import main
from lottery_style.data.sample import sample_dirs
from lottery_style.engine.lottery import LotteryRun
from lottery_style.models.base import StyleTransferModule
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets.loading import load_ticket
from lottery_style.tickets.paths import DONE, round_dir
from lottery_style.tools.onnx_export import export_onnx
from lottery_style.tools.stylize import read_image, to_model_input
from tests.conftest import TINY, compose_train, tiny_model
from tests.test_cli_errors import one_error_line

TOLERANCE = 1e-4
SIZES = (64, 96)  # the shorter side of each image, as `stylize --size` scales it
PAIRS = (("chelsea", "brick"), ("astronaut", "hubble_deep_field"))  # content and style of different sizes and aspects


def sample_image(role: str, name: str, size: int, multiple: int) -> torch.Tensor:
    content_dir, style_dir = sample_dirs()
    folder = content_dir if role == "content" else style_dir
    return to_model_input(read_image(folder / f"{name}.png", role, skip=False), size, multiple)


def needs_deploy_extra() -> None:
    """Skip where the deploy extra is not installed (CI installs it): the exporter's packages and the runtime."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[deploy]')")


def onnx_session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_stylize(session, content: torch.Tensor, style: torch.Tensor, alpha: float) -> torch.Tensor:
    feeds = {"content": content.numpy(), "style": style.numpy(), "alpha": np.array(alpha, dtype=np.float32)}
    return torch.from_numpy(session.run(["stylized"], feeds)[0])


def saved_round(folder: Path, model: StyleTransferModule) -> Path:
    """A round folder saved by hand (dense weights, no masks), loadable like a trained one."""
    folder.mkdir(parents=True)
    config = {"model": OmegaConf.to_container(model.cfg, enum_to_str=True)}
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(config))
    torch.save(trainable_state(model), folder / "weights.pt")
    (folder / DONE).write_text("")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny AdaIN and SANet runs: round_00 dense, round_01 a masked ticket at 20% sparsity."""
    found = {}
    for name in ("adain", "sanet"):
        out = tmp_path_factory.mktemp(f"{name}_run")
        LotteryRun(compose_train([*TINY, f"model={name}", "pruning.rounds=1", "training.steps=2"], out), out).run()
        found[name] = out
    return found


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict[tuple[str, int], Path]:
    """Each round of each run written by the console script's own path (``cli.main``)."""
    needs_deploy_extra()
    out = tmp_path_factory.mktemp("onnx")
    files = {}
    for name, run in runs.items():
        for index in (0, 1):
            path = out / f"{name}_{index}.onnx"
            assert main(["export", str(round_dir(run, index)), "--format", "onnx", "--out", str(path)]) == 0
            files[name, index] = path
    return files


@pytest.mark.parametrize("index", [0, 1], ids=["dense", "masked"])
@pytest.mark.parametrize("name", ["adain", "sanet"])
def test_onnx_runtime_stylizes_as_pytorch_at_two_sizes(name: str, index: int, runs, exported) -> None:
    model, _ = load_ticket(round_dir(runs[name], index))
    session = onnx_session(exported[name, index])
    for size in SIZES:
        for (content_name, style_name), alpha in zip(PAIRS, (1.0, 0.6)):
            content = sample_image("content", content_name, size, model.size_multiple)
            style = sample_image("style", style_name, size, model.size_multiple)
            assert content.shape[-2:] != style.shape[-2:]
            with torch.inference_mode():
                expected = model.stylize(content, style, alpha=alpha)
            got = onnx_stylize(session, content, style, alpha)
            assert got.shape == expected.shape == content.shape
            diff = (got - expected).abs().max().item()
            assert diff <= TOLERANCE, f"{name} round {index}, {size} px, alpha {alpha}: max abs diff {diff:.2e}"


def test_the_batch_is_dynamic_and_each_pair_stylized_alone(runs, exported) -> None:
    model, _ = load_ticket(round_dir(runs["sanet"], 1))
    session = onnx_session(exported["sanet", 1])
    contents = torch.cat([sample_image("content", name, 64, 16)[..., :64, :64] for name in ("chelsea", "coffee")])
    styles = torch.cat([sample_image("style", name, 48, 16) for name in ("brick", "gravel")])  # both square
    got = onnx_stylize(session, contents, styles, 0.8)
    with torch.inference_mode():
        expected = torch.cat([model.stylize(contents[i : i + 1], styles[i : i + 1], alpha=0.8) for i in range(2)])
    assert got.shape == (2, 3, 64, 64)
    assert (got - expected).abs().max().item() <= TOLERANCE


def test_a_masked_ticket_holds_its_pruned_weights_as_zeros(runs, exported) -> None:
    import onnx

    _, parts = load_ticket(round_dir(runs["adain"], 1))
    pruned = sum(int((mask == 0).sum()) for mask in parts.masks.values())
    assert pruned > 0

    def zeros(path: Path) -> int:
        weights = onnx.load(str(path)).graph.initializer
        floats = [t for t in weights if t.data_type == onnx.TensorProto.FLOAT]
        return sum(int((onnx.numpy_helper.to_array(t) == 0).sum()) for t in floats)

    assert zeros(exported["adain", 1]) >= pruned > zeros(exported["adain", 0])
    props = {p.key: p.value for p in onnx.load(str(exported["adain", 1])).metadata_props}
    assert props["lottery_style.model"] == "adain" and props["lottery_style.size_multiple"] == "8"
    assert float(props["lottery_style.sparsity"]) == pytest.approx(parts.info["sparsity"])


@pytest.mark.parametrize("name", ["lst", "manet", "mccnet"])
def test_the_other_exportable_architectures(name: str, tmp_path: Path) -> None:
    """LST and MANet to the tolerance. MCCNet's channel weight (a sum of squares over a sum) is ill-conditioned
    with random weights, so fp32 is itself ~1e-3 off: ONNX Runtime must be as close to fp64 as PyTorch's fp32 is."""
    needs_deploy_extra()
    model = tiny_model(name).eval().requires_grad_(False)
    path = export_onnx(saved_round(tmp_path / "round_00", model), tmp_path / f"{name}.onnx").path
    session = onnx_session(path)
    content = sample_image("content", "chelsea", 64, model.size_multiple)
    style = sample_image("style", "brick", 80, model.size_multiple)
    got = onnx_stylize(session, content, style, 0.7)
    with torch.inference_mode():
        expected = model.stylize(content, style, alpha=0.7)
        if name != "mccnet":
            assert (got - expected).abs().max().item() <= TOLERANCE
            return
        exact = model.double().stylize(content.double(), style.double(), alpha=0.7)
    fp32_error = (expected.double() - exact).abs().max().item()
    assert (got.double() - exact).abs().max().item() <= 4 * fp32_error


# ------------------------------------------------------------------ refusals, each one line
def test_adaattn_is_refused_naming_its_random_style_sampling(tmp_path: Path, capsys) -> None:
    needs_deploy_extra()
    folder = saved_round(tmp_path / "run" / "round_00", tiny_model("adaattn"))
    out = tmp_path / "adaattn.onnx"
    line = one_error_line(capsys, ["export", str(folder), "--format", "onnx", "--out", str(out)])
    assert f"cannot export {folder} (adaattn) to ONNX" in line and "torch.randperm" in line, line
    assert not out.exists()


def test_bad_export_arguments_are_one_line(tmp_path: Path, capsys) -> None:
    needs_deploy_extra()
    folder = saved_round(tmp_path / "run" / "round_00", tiny_model("adain"))
    out = str(tmp_path / "t.onnx")
    line = one_error_line(capsys, ["export", str(folder), "--format", "onix", "--out", out])
    assert "--format 'onix' is unknown: expected one of ticket, onnx" in line
    line = one_error_line(capsys, ["export", str(folder.parent), "--format", "onnx", "--out", out])
    assert "is a run folder" in line and "round_00" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(capsys, ["export", str(empty), "--format", "onnx", "--out", out])
    assert f"{empty} is not a finished round folder" in line
    line = one_error_line(capsys, ["export", str(folder), "--format", "onnx", "--fp16", "--out", out])
    assert "--fp16 apply to --format ticket only" in line
    assert not Path(out).exists()


def test_without_the_deploy_extra_onnx_export_names_it(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    folder = saved_round(tmp_path / "run" / "round_00", tiny_model("adain"))
    line = one_error_line(capsys, ["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "t.onnx")])
    assert line.endswith(
        "--format onnx needs onnxscript, which is not installed: "
        "expected the deploy extra (pip install 'lottery-style[deploy]')"
    ), line


def test_a_model_the_exporter_cannot_trace_is_refused_naming_why(tmp_path: Path, capsys, monkeypatch) -> None:
    """A Python branch on alpha's value (SANet's shortcut before it stepped aside for a tensor alpha)."""
    from lottery_style.models.adain import AdaIN

    def branching(self, content, style, alpha=1.0):
        features = self.encoder(content)[-1]
        return self.decoder(features if alpha == 1.0 else alpha * features)

    needs_deploy_extra()
    monkeypatch.setattr(AdaIN, "stylize", branching)
    folder = saved_round(tmp_path / "run" / "round_00", tiny_model("adain"))
    out = tmp_path / "t.onnx"
    line = one_error_line(capsys, ["export", str(folder), "--format", "onnx", "--out", str(out)])
    assert f"cannot export {folder} (adain) to ONNX: GuardOnDataDependentSymNode: " in line, line
    assert not out.exists()
