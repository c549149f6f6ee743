"""W&B logging: one offline run per round per multirun job, grouped per IMP run, never asking for a key."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lottery_style.engine.loggers import wandb_group, wandb_mode
from lottery_style.tickets.paths import TICKET_FILE
from tests.conftest import TINY

# ------------------------------------------------------------ reading offline runs
# An offline run keeps everything it would upload in run-<id>.wandb: a LevelDB-style log of
# protobuf records behind a 7-byte W&B header. Reading it checks what `wandb sync` would send.
BLOCK, HEADER, FULL, LAST = 32768, 7, 1, 4


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pending += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def items(updates: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}


def offline_run(run_folder: Path) -> dict[str, Any]:
    """Group, job type, config, summary, history keys and artifacts of one offline run folder."""
    (log,) = run_folder.glob("run-*.wandb")
    run: dict[str, Any] = {"config": {}, "summary": {}, "history": [], "artifacts": []}
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(group=record.run.run_group, job_type=record.run.job_type)
            run["config"].update(items(record.run.config.update))
        elif kind == "config":
            run["config"].update(items(record.config.update))
        elif kind == "summary":
            run["summary"].update(items(record.summary.update))
        elif kind == "history":
            run["history"].append(items(record.history.item))
        elif kind == "artifact":
            files = {entry.path: entry.local_path for entry in record.artifact.manifest.contents}
            run["artifacts"].append((record.artifact.name, record.artifact.type, files))
    return run


# ------------------------------------------------------------------ unit tests
@pytest.fixture
def no_wandb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_mode_is_offline_without_a_key_and_online_with_one(no_wandb_env: Path, monkeypatch) -> None:
    assert wandb_mode(None) == "offline"  # no key anywhere: never prompt, never fail
    no_wandb_env.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert wandb_mode(None) == "online"
    no_wandb_env.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode(None) == "offline"  # the user's WANDB_MODE wins over the key
    assert wandb_mode("disabled") == "disabled"  # and logger.mode over both
    with pytest.raises(ValueError, match="logger.mode='onlin' is invalid"):
        wandb_mode("onlin")


def test_group_is_the_run_folder_from_its_experiment_folder(tmp_path: Path) -> None:
    single = tmp_path / "outputs" / "quickstart" / "adain-imp-1a2b3c4d"
    job = tmp_path / "outputs" / "multirun" / "quickstart" / "2026-01-01_00-00-00" / "3"
    assert wandb_group("quickstart", single) == "quickstart/adain-imp-1a2b3c4d"
    assert wandb_group("quickstart", job) == "quickstart/2026-01-01_00-00-00/3"
    elsewhere = [wandb_group("quickstart", tmp_path / sweep / "0") for sweep in ("a", "b")]
    assert all(group.startswith("quickstart/0-") for group in elsewhere)
    assert elsewhere[0] != elsewhere[1]


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_multirun_logs_every_round_of_every_job_into_its_own_offline_run(tmp_path: Path) -> None:
    """Job 0 is dense (one round), job 1 IMP (rounds 0 and 1): different shapes, so any mix-up shows. Rewound to
    step 1, round 0 is two fits (steps 0..1, 1..2) and the ticket one (1..2): W&B gets the schedule's steps."""
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    env = {**os.environ, "CI": "true", "HOME": str(home), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    for name in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):  # no key here: the default must choose offline itself
        env.pop(name, None)
    args = [*TINY, "training.steps=2", "logger=wandb", "pruning=dense,imp", "pruning.rounds=1", "pruning.rewind=step",
            "pruning.rewind_step=1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "lottery_style.train", "-m", *args],
        cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    groups = set()
    for job, method, rounds in ((sweep / "0", "dense", 1), (sweep / "1", "imp", 2)):
        runs = [offline_run(p) for p in sorted((job / "wandb").glob("offline-run-*"))]
        assert sorted(r["job_type"] for r in runs) == sorted([method] * rounds + ["summary"])
        assert len({r["group"] for r in runs}) == 1
        groups.add(runs[0]["group"])
        for run in runs:
            assert run["config"]["output_dir"] == str(job)
            assert run["config"]["pruning"]["method"] == method
        round_runs = sorted((r for r in runs if r["job_type"] != "summary"), key=lambda r: r["config"]["round"])
        assert [r["config"]["round"] for r in round_runs] == list(range(rounds))
        for index, run in enumerate(round_runs):
            ticket = job / f"round_{index:02d}"
            metrics = json.loads((ticket / "metrics.json").read_text())
            assert run["config"]["sparsity"] == pytest.approx(metrics["sparsity"])
            assert run["summary"]["eval/E"] == pytest.approx(metrics["E"])
            assert run["summary"]["grid/_type"] == "image-file"
            steps = [h["trainer/global_step"] for h in run["history"] if "train/loss" in h]
            assert steps == ([0, 1] if index == 0 else [1]), "training metrics of exactly this round's steps"
            ((name, kind, files),) = run["artifacts"]
            assert kind == "ticket" and name.endswith(f"round{index:02d}")
            assert files == {f: str(ticket / f) for f in (TICKET_FILE, "metrics.json")}
        (summary,) = [r for r in runs if r["job_type"] == "summary"]
        verdict = json.loads((job / "summary.json").read_text())["verdict"]
        for key in ("extreme_sparsity", "highest_matching_sparsity", "dense_E"):
            assert summary["summary"][key] == pytest.approx(verdict[key]), key
        assert summary["summary"]["rounds/nrows"] == rounds
    assert len(groups) == 2
    staged = home / ".local" / "share" / "wandb"
    assert not staged.exists() or not any(p.is_file() for p in staged.rglob("*")), "W&B wrote outside the run folder"
