"""Tickets in use: `lottery-style stylize` and `export` on a tiny trained ticket, in its three forms."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from lottery_style.cli import main
from lottery_style.engine.lottery import LotteryRun
from lottery_style.models.components.vgg import Layout, VGGEncoder
from lottery_style.pruning.callback import trainable_state
from lottery_style.tickets.export import load_ticket_export
from lottery_style.tickets.loading import load_ticket
from lottery_style.tickets.paths import DONE, round_dir
from lottery_style.tickets.storage import save_round
from lottery_style.tools.stylize import fitted_size
from tests.conftest import TINY, compose_train, tiny_model
from tests.test_true_pixels import HEIGHT, WIDTH, write_grey16, write_rotated


def write_image(path: Path, width: int, height: int, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def as_batch(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_png(path).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ticket_run")
    cfg = compose_train([*TINY, "pruning.rounds=1", "training.steps=2"], output_dir=out)
    LotteryRun(cfg, out).run()
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    return {
        "contents": write_image(root / "contents" / "wide.png", 44, 26, 0).parent,
        "square": write_image(root / "contents" / "square.png", 32, 32, 1),
        "style": write_image(root / "styles" / "style.png", 40, 40, 2),
        "style2": write_image(root / "styles" / "other.png", 24, 48, 3),
    }


def made_visible(source: Path, folder: Path, content: torch.Tensor) -> Path:
    """A copy of round folder ``source`` as ``folder``, its last decoder layer rescaled so that the reconstruction
    of ``content`` (a batch) spans [0, 1]: a 2-step decoder outputs nearly a constant ~0.003, which 8-bit PNGs
    would round to 0 whatever the input."""
    shutil.copytree(source, folder)
    model, parts = load_ticket(folder)
    last = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        linear = model.decoder(model.encoder(content)[-1]) - last.bias.view(1, -1, 1, 1)
        scale = 0.2 / linear.std(dim=(0, 2, 3))
        last.weight.mul_(scale.view(-1, 1, 1, 1))
        last.bias.copy_(0.5 - linear.mean(dim=(0, 2, 3)) * scale)
    save_round(folder, trainable_state(model), parts.masks)
    return folder


@pytest.fixture(scope="module")
def visible_ticket(run_dir: Path, images: dict[str, Path], tmp_path_factory) -> Path:
    """Round 1, made visible on the square test content."""
    return made_visible(round_dir(run_dir, 1), tmp_path_factory.mktemp("visible") / "round_01", as_batch(images["square"]))


def test_every_content_with_every_style_at_the_documented_sizes(run_dir, images, tmp_path) -> None:
    ticket = round_dir(run_dir, 1)
    styles = images["style"].parent
    assert main(["stylize", "--ticket", str(ticket), "--content", str(images["contents"]),
                 "--style", str(styles), "--out", str(tmp_path / "sized"), "--size", "32"]) == 0  # fmt: skip
    written = {p.name: Image.open(p).size for p in (tmp_path / "sized").glob("*.png")}
    # shorter side -> 32, each side to the nearest multiple of 8: 44x26 -> 54x32 -> 56x32; 32x32 stays
    assert written == {
        "wide__style.png": (56, 32), "wide__other.png": (56, 32),
        "square__style.png": (32, 32), "square__other.png": (32, 32),
    }  # fmt: skip
    assert main(["stylize", "--ticket", str(ticket), "--content", str(images["contents"] / "wide.png"),
                 "--style", str(images["style"]), "--out", str(tmp_path / "kept"), "--keep-size"]) == 0  # fmt: skip
    assert Image.open(tmp_path / "kept" / "wide__style.png").size == (44, 26)  # back to the content's own size
    assert fitted_size(44, 26, None, 8) == (48, 24)  # what the model saw
    assert fitted_size(26, 44, 512, 16) == (512, 864)


def test_alpha_zero_decodes_the_content_features_unchanged(visible_ticket, images, tmp_path) -> None:
    model, _ = load_ticket(visible_ticket)
    content = as_batch(images["square"])
    with torch.no_grad():
        expected = model.decoder(model.encoder(content)[-1])
        for style in (images["style"], images["style2"]):
            styled = as_batch(style)
            assert torch.allclose(model.stylize(content, styled, alpha=0.0), expected, atol=1e-6)
    inside = ((expected > 0.05) & (expected < 0.95)).float().mean()
    assert inside > 0.5, "the check below needs outputs that 8-bit PNGs resolve"
    assert main(["stylize", "--ticket", str(visible_ticket), "--content", str(images["square"]),
                 "--style", str(images["style"].parent), "--out", str(tmp_path), "--alpha", "0", "--keep-size"]) == 0  # fmt: skip
    target = expected.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    for name in ("square__style.png", "square__other.png"):
        assert np.abs(read_png(tmp_path / name) - target).max() <= 0.5 + 1e-3, name
    with torch.no_grad():
        assert not torch.allclose(model.stylize(content, as_batch(images["style"]), alpha=1.0), expected, atol=1e-3)


def test_export_file_and_checkpoint_hold_the_ticket(run_dir, images, tmp_path, capsys) -> None:
    ticket = round_dir(run_dir, 1)
    reference, parts = load_ticket(ticket)
    out = tmp_path / "ticket.safetensors.xz"
    assert main(["export", str(ticket), "--out", str(out), "--compress"]) == 0
    printed = capsys.readouterr().out
    assert "smaller than dense fp32" in printed and "the floor" in printed
    exported, _ = load_ticket(out, "adain")
    _state, masks = load_ticket_export(out)
    assert all(torch.equal(masks[k], parts.masks[k]) for k in parts.masks)
    for key, value in trainable_state(reference).items():
        assert torch.equal(trainable_state(exported)[key], value), key
    for source, name in ((ticket, "folder"), (out, "export")):
        assert main(["stylize", "--ticket", str(source), "--content", str(images["square"]),
                     "--style", str(images["style"]), "--out", str(tmp_path / name), "--keep-size"]) == 0  # fmt: skip
    assert np.array_equal(read_png(tmp_path / "folder" / "square__style.png"), read_png(tmp_path / "export" / "square__style.png"))

    trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    batch = {"content": torch.rand(3, 32, 32), "style": torch.rand(3, 32, 32)}
    trained = tiny_model("adain")
    trainer.fit(trained, train_dataloaders=DataLoader([batch]))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    from_ckpt, _ = load_ticket(tmp_path / "last.ckpt")
    for key, value in trainable_state(trained).items():
        assert torch.equal(trainable_state(from_ckpt)[key], value), key


def test_a_torchvision_vgg_ticket_loads_in_its_own_layout_without_download(tmp_path) -> None:
    model = tiny_model("adain")
    model.encoder = VGGEncoder(Layout.torchvision, 4)
    folder = tmp_path / "round_00"
    folder.mkdir()
    cfg = OmegaConf.create({"model": OmegaConf.to_container(model.cfg, enum_to_str=True)})
    cfg.model.encoder.weights = "torchvision"
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    torch.save(trainable_state(model), folder / "weights.pt")  # an old folder: dense weights, no masks
    (folder / DONE).write_text("")
    loaded, _ = load_ticket(folder)
    assert loaded.encoder.layout is Layout.torchvision
    for key, value in trainable_state(model).items():
        assert torch.equal(trainable_state(loaded)[key], value), key


def test_rotated_and_16_bit_contents_stylize_as_their_upright_8_bit_twins(run_dir, images, tmp_path) -> None:
    """Issue 22, points 6 and 7, through the whole tool: an EXIF-rotated JPEG's output is its upright twin's, at
    the upright size, and a 16-bit grey PNG's is its 8-bit twin's (``--alpha 0`` and a ticket made visible on
    the twins: the outputs follow the content)."""
    contents = tmp_path / "contents"
    contents.mkdir()
    rotated, grey = write_rotated(tmp_path / "made", 6), write_grey16(tmp_path / "made")
    for path in (*rotated.values(), *grey.values()):
        shutil.copy(path, contents / path.name)
    twins = torch.cat([as_batch(rotated["twin"]), as_batch(grey["twin"])])
    ticket = made_visible(round_dir(run_dir, 1), tmp_path / "visible" / "round_01", twins)
    assert main(["stylize", "--ticket", str(ticket), "--content", str(contents), "--style", str(images["style"]),
                 "--out", str(tmp_path / "out"), "--alpha", "0", "--keep-size"]) == 0  # fmt: skip
    rotated, upright = read_png(tmp_path / "out" / "rotated6__style.png"), read_png(tmp_path / "out" / "twin6__style.png")
    assert rotated.shape == (HEIGHT, WIDTH, 3) and rotated.std() > 10  # a portrait, and not a constant
    assert np.array_equal(rotated, upright)
    sixteen, eight = read_png(tmp_path / "out" / "grey16__style.png"), read_png(tmp_path / "out" / "twin__style.png")
    assert sixteen.std() > 10 and np.array_equal(sixteen, eight)


def test_a_folder_with_unreadable_images_is_stylized_with_each_named_and_a_non_zero_exit(
    run_dir, images, tmp_path, capsys
) -> None:
    """Issue 22, point 9: every readable pair is written, each unreadable file gets one line, then the total, and
    the exit code says the folder was not complete."""
    contents, styles = tmp_path / "contents", tmp_path / "styles"
    contents.mkdir()
    styles.mkdir()
    shutil.copy(images["contents"] / "wide.png", contents)
    shutil.copy(images["square"], contents)
    (contents / "a_broken.jpg").write_bytes(b"not a jpeg")
    whole = (contents / "wide.png").read_bytes()
    (contents / "z_truncated.png").write_bytes(whole[: len(whole) // 2])
    shutil.copy(images["style"], styles)
    (styles / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["stylize", "--ticket", str(round_dir(run_dir, 1)), "--content", str(contents),
                 "--style", str(styles), "--out", str(out), "--size", "32"]) == 2  # fmt: skip
    printed = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["square__style.png", "wide__style.png"]
    assert printed.out.splitlines() == [str(out / "square__style.png"), str(out / "wide__style.png")]
    lines = printed.err.strip().splitlines()
    skipped = [styles / "bad.png", contents / "a_broken.jpg", contents / "z_truncated.png"]
    assert len(lines) == 5
    for line, role, path in zip(lines, ("style", "content", "content"), skipped):
        assert line.startswith(f"lottery-style stylize: skipped unreadable {role} image {path} (")
    assert lines[3] == f"2 stylized image(s) in {out}"
    assert lines[4] == "lottery-style stylize: error: 3 unreadable image(s) skipped, named above"
