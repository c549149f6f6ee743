"""Bad input to the tools: one clear line on stderr naming the bad value, exit code != 0, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import save_file

from lottery_style.cli import main
from lottery_style.core.config import ConfigError
from lottery_style.engine.validation import check_hardware
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets.paths import DONE
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """An AdaIN round folder saved by hand (no training needed to be loadable), a good image and a broken one."""
    root = tmp_path_factory.mktemp("cli")
    ticket = root / "run" / "round_00"
    ticket.mkdir(parents=True)
    model = tiny_model("adain")
    config = {"model": OmegaConf.to_container(model.cfg, enum_to_str=True)}
    (ticket / "config.yaml").write_text(OmegaConf.to_yaml(config))
    torch.save(trainable_state(model), ticket / "weights.pt")  # an old folder: dense weights, no masks
    (ticket / DONE).write_text("")
    image = root / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(image)
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return {"ticket": ticket, "image": image, "broken": broken, "root": root}


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lottery-style {argv[0]}: error: ")
    return lines[0]


def stylize_args(files: dict[str, Path], ticket: Path, content: Path, *extra: str) -> list[str]:
    return ["stylize", "--ticket", str(ticket), "--content", str(content), "--style", str(files["image"]),
            "--out", str(files["root"] / "out"), *extra]  # fmt: skip


def test_missing_ticket_path(files, capsys) -> None:
    missing = files["root"] / "no_such_round"
    line = one_error_line(capsys, stylize_args(files, missing, files["image"]))
    assert str(missing) in line and "does not exist" in line and "round folder" in line


def test_ticket_of_another_architecture_than_asked(files, capsys) -> None:
    line = one_error_line(capsys, stylize_args(files, files["ticket"], files["image"], "--model", "sanet"))
    assert "'adain'" in line and "'sanet'" in line
    assert not (files["root"] / "out").exists(), "nothing may be written for a refused ticket"


def test_unreadable_image(files, capsys) -> None:
    line = one_error_line(capsys, stylize_args(files, files["ticket"], files["broken"]))
    assert f"cannot read content image {files['broken']}" in line


def test_run_folder_instead_of_round_and_non_ticket_file(files, capsys) -> None:
    line = one_error_line(capsys, stylize_args(files, files["ticket"].parent, files["image"]))
    assert "is a run folder" in line and "round_00" in line
    line = one_error_line(capsys, stylize_args(files, files["broken"], files["image"]))
    assert str(files["broken"]) in line and "Lightning .ckpt" in line
    weights = files["root"] / "weights.safetensors"  # a safetensors file of plain weights: no ticket's metadata
    save_file({"decoder.0.weight": torch.zeros(2)}, weights)
    line = one_error_line(capsys, stylize_args(files, weights, files["image"]))
    assert f"{weights} is not a lottery-style ticket file" in line and "'lottery-style ticket' in its metadata" in line


def test_export_and_report_of_missing_folders(files, capsys) -> None:
    line = one_error_line(capsys, ["export", str(files["root"] / "nope"), "--out", str(files["root"] / "t.safetensors")])
    assert "nope does not exist" in line
    line = one_error_line(capsys, ["export", str(files["ticket"]), "--out", str(files["root"] / "t.safetensors")])
    assert "no mask.pt" in line
    empty = files["root"] / "empty"
    empty.mkdir(exist_ok=True)
    line = one_error_line(capsys, ["report", str(empty), "--out", str(files["root"] / "report")])
    assert f"{empty} holds no run folder" in line
    line = one_error_line(capsys, ["report", str(files["ticket"].parent), "--out", str(files["root"] / "report")])
    assert "has no summary.json" in line and "metrics.json" in line


def test_console_script_exit_code_and_stderr(files) -> None:
    missing = files["root"] / "missing.ckpt"
    result = subprocess.run(
        [sys.executable, "-m", "lottery_style", *stylize_args(files, missing, files["image"])],
        capture_output=True, check=False, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (
            f"lottery-style stylize: error: ticket {missing} does not exist: expected a round folder (round_XX/), "
            "a ticket export file, a slim model file or a Lightning .ckpt"
        )
    ]


# ------------------------------------------------------------------ training: bad values on the command line
@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no images here")
    a_file = tmp_path / "image.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(a_file)
    return {"missing": tmp_path / "no_such_folder", "empty": empty, "file": a_file}


BAD_VALUES = [  # (overrides, what the one line must name)
    (["hardware=gpu"], "hardware.accelerator=gpu"),
    (["hardware=ddp"], "hardware.accelerator=gpu"),
    (["model.optimizer.lr=-1"], "model.optimizer.lr=-1.0 is invalid: expected > 0"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0.0 is invalid: expected > 0"),
    (["model.optimizer.lr_decay=-0.5"], "model.optimizer.lr_decay=-0.5 is invalid: expected >= 0"),
    (["model.optimizer.name=sgd", "model.optimizer.momentum=1"],
     "model.optimizer.momentum=1.0 is invalid: expected in [0, 1)"),
    (["model.optimizer.momentum=-0.1"], "model.optimizer.momentum=-0.1 is invalid: expected in [0, 1)"),
    (["model.optimizer.weight_decay=-1e-4"], "model.optimizer.weight_decay=-0.0001 is invalid: expected >= 0"),
    (["model.loss_weights.style=-10"], "model.loss_weights.style=-10.0 is invalid: expected >= 0"),
    (["data.content_dir={missing}"], "data.content_dir={missing} does not exist"),
    (["data.style_dir={empty}"], "data.style_dir={empty} has no images"),
    (["data.eval_content_dir={file}"], "data.eval_content_dir={file} is not a folder"),
    (["data.eval_style_dir={missing}"], "data.eval_style_dir={missing} does not exist"),
    (["model=lst", "model.level=5"], "model.level=5 is invalid: expected one of 3, 4"),
    (["model=lst", "model.matrix_size=0"], "model.matrix_size=0 is invalid: expected > 0"),
    (["model=adaattn", "model.max_sample_relu3=0"], "model.max_sample_relu3=0 is invalid: expected > 0"),
    (["model=adaattn", "model.max_sample_relu45=-1"], "model.max_sample_relu45=-1 is invalid: expected > 0"),
    (["model=adaattn", "model.max_sample_local=0"], "model.max_sample_local=0 is invalid: expected > 0"),
    (["model=adaattn", "model.eps=0"], "model.eps=0.0 is invalid: expected > 0"),
    (["model=adaattn", "model.init_std=-0.02"], "model.init_std=-0.02 is invalid: expected > 0"),
    (["model=adaattn", "model.loss_weights.local=-3"], "model.loss_weights.local=-3.0 is invalid: expected >= 0"),
    (["seed=-1"], "seed=-1 is invalid: expected in [0, 4294967295]"),
    (["pruning.seed=-2"], "pruning.seed=-2 is invalid: expected in [0, 4294967295]"),
    (["data.stream_seed=4294967296"], "data.stream_seed=4294967296 is invalid: expected in [0, 4294967295]"),
    (["model=vgg"], "model=vgg is invalid: expected one of adaattn, adain, lst, manet, mccnet, sanet"),
    (["model=adain,vgg"], "model=vgg is invalid: expected one of adaattn, adain, lst, manet, mccnet, sanet"),
]


@pytest.mark.parametrize(("overrides", "named"), BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_training_value_fails_in_one_line_before_any_model_is_built(
    overrides: list[str], named: str, folders: dict[str, Path], tmp_path: Path, capsys, monkeypatch
) -> None:
    """The console script's own path (``cli.main``), in-process: every VGG is built through base.build_encoder."""
    built: list[object] = []
    monkeypatch.setattr("lottery_style.models.base.build_encoder", lambda *args, **kwargs: built.append(args))
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    overrides = [o.format(**folders) for o in overrides]
    with pytest.raises(SystemExit) as exit_info:
        main([*overrides, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"])
    code = exit_info.value.code
    assert code not in (0, None)
    # A string exit code is what the interpreter prints on stderr as the process ends.
    lines = capsys.readouterr().err.strip().splitlines() + ([code] if isinstance(code, str) else [])
    assert len(lines) == 1, lines
    assert lines[0].startswith("lottery-style: ") and named.format(**folders) in lines[0], lines[0]
    assert not built, "a VGG was built before the bad value was reported"
    assert not (tmp_path / "run").exists(), "a run that never started left a folder"


def test_a_refused_sweep_job_leaves_no_sweep_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    with pytest.raises(SystemExit) as exit_info:
        main(["-m", "seed=-1,0", "logger=csv", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert exit_info.value.code == "lottery-style: seed=-1 is invalid: expected in [0, 4294967295]"
    assert not (tmp_path / "sweep").exists()


def test_a_refused_run_in_an_earlier_runs_folder_keeps_that_folder(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    (run / "round_00").mkdir(parents=True)
    (run / "round_00" / "metrics.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    with pytest.raises(SystemExit):
        main(["seed=-1", "logger=csv", f"hydra.run.dir={run}"])
    assert (run / "round_00" / "metrics.json").read_text() == "{}" and (run / ".hydra" / "config.yaml").is_file()


def test_two_hydra_commands_fail_in_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    with pytest.raises(SystemExit) as exit_info:
        main(["-m", "seed=0,1", "--cfg", "job"])
    assert capsys.readouterr().err == ""
    assert exit_info.value.code == (
        "lottery-style: -m and --cfg job cannot be combined: expected one of -m (run a sweep), --cfg (print the "
        "config), --info, --run; to see one job of a sweep, give its overrides without -m: lottery-style --cfg job <overrides>"
    )


@pytest.mark.slow
def test_gpu_on_a_machine_without_one_is_one_line_on_stderr(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run(
        [sys.executable, "-m", "lottery_style", "hardware=gpu", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, check=False, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        (
            "lottery-style: hardware.accelerator=gpu is invalid: this machine has no CUDA GPU; "
            "expected hardware=cpu (or hardware=ddp_cpu for DDP on CPU processes)"
        )
    ]
    assert not list((tmp_path / "run").glob("round_*"))


@pytest.mark.parametrize(("devices", "fails"), [(2, False), (-1, False), ("auto", False), (4, True), ([0, 3], True)])
def test_more_gpus_than_the_machine_has_fail_naming_hardware_devices(devices: object, fails: bool, monkeypatch) -> None:
    """With two (faked) GPUs, Lightning's own device parser decides which ``hardware.devices`` fit."""
    for module in ("lightning.fabric.accelerators.cuda", "lightning.pytorch.accelerators.cuda"):
        monkeypatch.setattr(f"{module}.num_cuda_devices", lambda: 2)
    hardware = OmegaConf.create({"accelerator": "gpu", "devices": devices})
    if not fails:
        check_hardware(hardware)
        return
    with pytest.raises(ConfigError) as error:
        check_hardware(hardware)
    message = str(error.value)
    assert message.startswith(f"hardware.devices={hardware.devices} is invalid: ") and "\n" not in message, message


def refused_slurm_sweep(tmp_path: Path, capsys, monkeypatch) -> object:
    """The exit code of a `launcher=slurm` sweep that must be refused before Hydra writes anything (no stderr,
    no sweep folder)."""
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    with pytest.raises(SystemExit) as exit_info:
        main(["-m", "launcher=slurm", "pruning=dense", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "sweep").exists()
    return exit_info.value.code


def test_slurm_launcher_without_its_extra_fails_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    for name in [m for m in sys.modules if m.startswith("hydra_plugins.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hydra_plugins", None)  # no Hydra plugin installed
    assert refused_slurm_sweep(tmp_path, capsys, monkeypatch) == (
        "lottery-style: launcher=slurm needs hydra_plugins.hydra_submitit_launcher, which is not installed: "
        "expected the slurm extra (pip install 'lottery-style[slurm]')"
    )


def test_export_of_a_file_says_it_is_not_a_round_folder(files, capsys) -> None:
    notes = files["root"] / "notes.txt"
    notes.write_text("not a ticket")
    line = one_error_line(capsys, ["export", str(notes), "--out", str(files["root"] / "t.safetensors")])
    assert f"{notes} is a file, not a round folder" in line and "does not exist" not in line, line


def test_slurm_launcher_off_a_slurm_cluster_fails_in_one_line_before_the_sweep_folder(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """submitit finds out that ``srun`` is missing only after Hydra made the sweep folder (a 25-line traceback)."""
    monkeypatch.setattr("lottery_style.engine.validation.installed", lambda module: True)  # the extra, or not
    monkeypatch.setenv("PATH", str(tmp_path / "no_commands"))
    assert refused_slurm_sweep(tmp_path, capsys, monkeypatch) == (
        "lottery-style: launcher=slurm needs the srun command of a SLURM cluster, which is not on this machine's PATH: "
        "expected to run on a SLURM cluster's login node (or no launcher= option to run here)"
    )
