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

from lottery_style.cli import main
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets import DONE
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


def test_export_and_report_of_missing_folders(files, capsys) -> None:
    line = one_error_line(capsys, ["export", str(files["root"] / "nope"), "--out", str(files["root"] / "t.lst")])
    assert "nope does not exist" in line
    line = one_error_line(capsys, ["export", str(files["ticket"]), "--out", str(files["root"] / "t.lst")])
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
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lottery-style stylize: error: ticket {missing} does not exist: expected a round folder (round_XX/), "
        "a ticket export file or a Lightning .ckpt"
    ]
