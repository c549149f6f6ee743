"""`lottery-style evaluate`: stored rounds judged again on the fixed pairs of two folders, resumably."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lottery_style.cli import main
from lottery_style.engine.lottery import LotteryRun
from lottery_style.tickets.paths import METRICS_FILE, evaluation_dir, round_dir
from lottery_style.tickets.storage import finished_rounds, read_metrics
from tests.conftest import TINY, compose_train


def image_folder(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """An IMP run (2 rounds) with a random-pruning branch, judged during training on the pairs of two test folders."""
    root = tmp_path_factory.mktemp("evaluate")
    contents, styles = image_folder(root / "contents", 3, 0), image_folder(root / "styles", 3, 1)
    run = root / "run"
    overrides = [*TINY, "pruning.rounds=1", "training.steps=2", "pruning.branches=[random_prune]",
                 f"data.eval_content_dir={contents}", f"data.eval_style_dir={styles}"]  # fmt: skip
    LotteryRun(compose_train(overrides, output_dir=run), run).run()
    return {"run": run, "contents": contents, "styles": styles}


def every_round(run: Path) -> list[Path]:
    return finished_rounds(run) + finished_rounds(run / "branches" / "random_prune")


def evaluate(trained: dict[str, Path], name: str, *options: str) -> int:
    return main(["evaluate", str(trained["run"]), "--content-dir", str(trained["contents"]), "--style-dir",
                 str(trained["styles"]), "--name", name, "--contents", "2", "--styles", "2", "--size", "32", "--quiet",
                 *options])  # fmt: skip


def test_the_pairs_a_run_was_trained_with_reproduce_its_per_pair_errors_bit_for_bit(trained) -> None:
    rounds = every_round(trained["run"])
    assert len(rounds) == 4  # IMP's rounds 0 and 1, the branch's round 0 (IMP's) and its round 1
    before = {ticket_dir: (ticket_dir / METRICS_FILE).read_bytes() for ticket_dir in rounds}
    assert evaluate(trained, "again") == 0
    for ticket_dir in rounds:
        trained_metrics, again = read_metrics(ticket_dir), read_metrics(evaluation_dir(ticket_dir, "again"))
        assert len(again["per_pair_E"]) == 4
        assert again["per_pair_E"] == trained_metrics["per_pair_E"]  # exact: same pairs, weights, device, threads
        for key in ("E", "E_content", "E_style", "ssim", "structure"):
            assert again[key] == trained_metrics[key], key
            assert len(again[f"per_pair_{key}"]) == 4
        assert (again["round"], again["sparsity"]) == (trained_metrics["round"], trained_metrics["sparsity"])
        assert (evaluation_dir(ticket_dir, "again") / "grid.png").is_file()
        assert (ticket_dir / METRICS_FILE).read_bytes() == before[ticket_dir]  # the training-time record untouched
    record = read_metrics(evaluation_dir(rounds[0], "again"))["evaluation"]
    assert (record["contents"], record["styles"], record["size"], record["seed"]) == (2, 2, 32, 1234)
    assert all(Path(content).parent == trained["contents"].resolve() for content, _ in record["pairs"])


def test_an_interrupted_evaluation_resumes_where_it_stopped(trained, monkeypatch, capsys) -> None:
    import lottery_style.tools.evaluate as tool

    real, calls = tool.evaluate_round, []

    def killed_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(tool, "evaluate_round", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        evaluate(trained, "views", "--crops", "2", "--load-size", "40")
    first = {ticket_dir: (evaluation_dir(ticket_dir, "views") / METRICS_FILE).stat().st_mtime_ns for ticket_dir in calls}
    monkeypatch.setattr(tool, "evaluate_round", real)
    capsys.readouterr()
    assert evaluate(trained, "views", "--crops", "2", "--load-size", "40") == 0
    assert "2 round(s) evaluated, 2 evaluated before, on 16 pairs" in capsys.readouterr().out
    for ticket_dir in every_round(trained["run"]):
        assert len(read_metrics(evaluation_dir(ticket_dir, "views"))["per_pair_E"]) == 16  # 2 x 2 views of 2 x 2 images
    assert {d: (evaluation_dir(d, "views") / METRICS_FILE).stat().st_mtime_ns for d in calls} == first  # not redone
    # the same name with other settings is refused, not mixed in
    assert evaluate(trained, "views") == 2
    assert "holds an evaluation named 'views' on other pairs or settings" in capsys.readouterr().err


def one_line_error(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lottery-style evaluate: error: ")
    return err


def test_a_folder_without_images_or_a_run_without_a_finished_round_is_one_line(trained, tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["evaluate", str(trained["run"]), "--content-dir", str(tmp_path / "empty"), "--style-dir",
                 str(trained["styles"]), "--name", "x", "--quiet"])  # fmt: skip
    assert str(tmp_path / "empty") in one_line_error(capsys, code)
    unfinished = tmp_path / "unfinished"
    round_dir(unfinished, 0).mkdir(parents=True)  # a run killed in its dense round
    code = main(["evaluate", str(unfinished), "--content-dir", str(trained["contents"]), "--style-dir",
                 str(trained["styles"]), "--name", "x", "--contents", "2", "--styles", "2", "--quiet"])  # fmt: skip
    assert f"run {unfinished} has no finished round" in one_line_error(capsys, code)
    assert "--name '../x' is not a folder name" in one_line_error(capsys, evaluate(trained, "../x"))
    assert "3 images, 40 needed" in one_line_error(capsys, main(
        ["evaluate", str(trained["run"]), "--content-dir", str(trained["contents"]), "--style-dir", str(trained["styles"]),
         "--name", "x", "--quiet"]))  # fmt: skip
    assert not any(evaluation_dir(d, "x").exists() for d in every_round(trained["run"]))
    assert json.loads((trained["run"] / "summary.json").read_text())["rounds"]  # the run's own records intact


def test_the_report_judges_and_draws_from_a_named_evaluation(trained, tmp_path, capsys) -> None:
    run = str(trained["run"])
    assert evaluate(trained, "again") == 0 and evaluate(trained, "views", "--crops", "2", "--load-size", "40") == 0
    for name, options in (("training", []), ("again", ["--eval", "again"]), ("views", ["--eval", "views"])):
        assert main(["report", run, "--out", str(tmp_path / name), *options]) == 0
    numbers = {name: json.loads((tmp_path / name / "report.json").read_text())["adain"] for name in ("training", "again", "views")}
    for series in ("imp", "random_prune"):
        # the training-time pairs again: every number of the report as the training-time one
        assert numbers["again"][series]["rounds"] == numbers["training"][series]["rounds"]
        assert numbers["again"][series]["paired"] == numbers["training"][series]["paired"]
        assert [row["paired"]["pairs"] for row in numbers["views"][series]["paired"]["rounds"]] == [16]
    dense_views = read_metrics(evaluation_dir(round_dir(trained["run"], 0), "views"))["E"]
    assert numbers["views"]["imp"]["rounds"][0]["E_mean"] == dense_views != numbers["training"]["imp"]["rounds"][0]["E_mean"]
    assert "from the evaluation <b>views</b>" in (tmp_path / "views" / "report.html").read_text()
    capsys.readouterr()
    assert main(["report", run, "--out", str(tmp_path / "none"), "--eval", "never"]) == 2
    assert f"{run} has no evaluation 'never' of its round 0" in capsys.readouterr().err
