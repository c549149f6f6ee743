"""Every file the framework writes gets the mode a plain ``open()`` gives under the user's umask (issue 22, point 10).

Atomic writes go through ``mkstemp``, which makes files 0600: on a shared cluster
teammates could not read tickets, metrics or reports. A tiny run through the
console script (Hydra's files and the sample set included), a report, an export,
a stylized image and a prepared folder are written under two umasks, and every
file and folder they leave is checked with ``stat``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lottery_style.cli import main
from lottery_style.core.atomic import atomic_copy, atomic_write_text, current_umask, file_mode
from lottery_style.tickets.paths import round_dir
from tests.conftest import TINY


def everything_under(folder: Path) -> Iterator[Path]:
    yield folder
    for root, folders, files in os.walk(folder):
        yield from (Path(root) / name for name in (*folders, *files))


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o027], indirect=True, ids=["022", "027"])
def test_every_file_a_run_a_report_an_export_stylize_and_prepare_write_has_the_umasks_mode(
    umask: int, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "written"  # made under the umask; pytest's own tmp_path is 0700 whatever the umask
    cache, run, report, styled, prepared = out / "cache", out / "run", out / "report", out / "styled", out / "prepared"
    monkeypatch.setenv("LOTTERY_STYLE_CACHE", str(cache))  # the sample set is built by this run
    monkeypatch.setattr(sys, "argv", ["lottery-style"])
    main([*TINY, "pruning.rounds=1", "training.steps=2", f"hydra.run.dir={run}"])
    ticket = round_dir(run, 1)
    content = cache / "sample" / "content"
    assert main(["report", str(run), "--out", str(report)]) == 0
    assert main(["export", str(ticket), "--out", str(out / "exported" / "ticket.safetensors")]) == 0
    assert main(["stylize", "--ticket", str(ticket), "--content", str(content / "moon.png"),
                 "--style", str(cache / "sample" / "style" / "brick.png"), "--out", str(styled), "--size", "32"]) == 0  # fmt: skip
    assert main(["prepare-data", str(content), str(prepared), "--size", "48", "--workers", "1", "--quiet"]) == 0

    written = list(everything_under(out))
    files = [p for p in written if p.is_file()]
    for must in ("train.log", "config.yaml", "ticket.safetensors", "metrics.json", "summary.json", "report.html",
                 "grid.png", "moon.png", "moon__brick.png", "prepared.json"):  # fmt: skip
        assert any(p.name == must for p in files), f"{must} was not written: the walk would miss it"
    wrong = {
        str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in written
        if stat.S_IMODE(p.stat().st_mode) != (0o777 if p.is_dir() else 0o666) & ~umask
    }
    assert not wrong, f"umask {umask:03o}: expected files {0o666 & ~umask:03o}, folders {0o777 & ~umask:03o}; got {wrong}"


def test_the_umask_is_read_without_changing_it(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        assert current_umask() == 0o077 and file_mode() == 0o600
        os.umask(0o002)
        assert current_umask() == 0o002  # read anew, not cached
        path = atomic_write_text(tmp_path / "a.txt", "a")
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
        assert os.umask(0o002) == 0o002  # reading it left it as it was
    finally:
        os.umask(previous)


def test_a_copy_gets_the_umasks_mode_not_its_sources(tmp_path: Path) -> None:
    """A branch copies its IMP run's round 0 where a hard link fails (another file system)."""
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 5000)
    source.chmod(0o600)
    previous = os.umask(0o022)
    try:
        copy = atomic_copy(source, tmp_path / "copy" / "source.bin")
    finally:
        os.umask(previous)
    assert copy.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o644
