"""One page from many run folders: E vs sparsity per experiment over seeds, verdicts, per-part sparsity, grids.

Runs are compared by their result-defining keys (:mod:`lottery_style.tickets.identity`,
read from each run's ``round_00/config.yaml``): runs equal in every such key but
the seed are *replicates* of one experiment, a *series*; any other difference
(method, rate, scope, steps, data, learning rate, ...) makes another series,
labelled by the keys that differ between series of the same method (e.g.
``imp, pruning.rate=0.1``). The same seed twice is one replicate: the report warns
and keeps the run with the most finished rounds. Rounds are aligned by sparsity.

Every number comes from the runs' own records (``summary.json``, or the finished
rounds when a run has no summary yet; with ``evaluation``, the rounds' records of that
``lottery-style evaluate`` name), so the page can be rebuilt at any time without a model. Spreads are sample standard deviations over replicates (0 for one).

The verdicts per series:

- per seed, the paper's strict rule (E <= dense E of that run), counted over seeds;
- across seeds, the replicate-aware rule of Chen et al. 2020 ("The Lottery Ticket
  Hypothesis for Pre-trained BERT Networks", appendix A: "the highest sparsities
  for which IMP subnetwork performance is within one standard deviation of the
  unpruned BERT model"): a sparsity matches when the ticket's E, averaged over
  replicates, is at most the dense round 0's E averaged over replicates plus one
  standard deviation of the dense E across replicates. With one replicate the
  standard deviation is 0 and the rule is the strict one;
- beside it, the paper's rule on the means over replicates and the paired verdict
  (each seed's ticket against its own dense round on the same pairs, at a declared
  margin): :mod:`lottery_style.tools.report_paired`.

All judge only the sparsities that every replicate of the series reached (a run
still training has fewer rounds): a sparsity judged on a subset of the seeds would
be compared with the others on other replicates. The others are shown, marked as
not judged, and every verdict says on how many replicates (n) it stands. The
extreme sparsity and the highest matching sparsity beside it are defined once, in
:func:`lottery_style.tickets.verdict.extreme_sparsity`.

The loading and plotting functions are public so that a notebook can draw the
same figures: ``load_runs(paths)``, ``group_runs(runs)``, ``aggregate(runs)``, ``dense_point(runs)``,
``replicate_verdict(runs)``, ``error_figure(groups)`` (and ``lottery_style.tools.plot_axes.remaining_axis`` for a figure of one's own).
Quality against cost (E vs the FLOPs a ticket keeps) is :mod:`lottery_style.tools.report_cost`.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import OmegaConf

from lottery_style.core.atomic import atomic_savefig, atomic_write_json, atomic_write_text
from lottery_style.core.config import PARTS, ConfigError, Granularity, part_of
from lottery_style.core.metrics import METRICS, Metric
from lottery_style.engine.extensions import load_extensions
from lottery_style.engine.methods.imp import IMP
from lottery_style.tickets.identity import REPLICATE_KEYS, identity, schema_defaults
from lottery_style.tickets.paired import MARGIN, check_margin
from lottery_style.tickets.paths import (
    GRID_FILE,
    METRICS_FILE,
    REPORT_HTML,
    REPORT_JSON,
    ROUND_CONFIG,
    SUMMARY_JSON,
    evaluation_dir,
    round_dir,
)
from lottery_style.tickets.storage import evaluated_rounds, read_metrics
from lottery_style.tickets.verdict import extreme_sparsity as _extreme
from lottery_style.tickets.verdict import summary_rows, table_metrics
from lottery_style.tools.plot_axes import remaining, remaining_axis
from lottery_style.tools.report_cost import (
    COST_FIELDS,
    COST_HEADER,
    cost_arrays,
    cost_cells,
    cost_figure,
    missing_cost,
    round_cost,
    series_label,
)
from lottery_style.tools.report_early_bird import (
    COMPARISON_HEADER,
    comparison,
    comparison_cells,
    distance_figure,
    early_bird_record,
)
from lottery_style.tools.report_instability import (
    INSTABILITY_HEADER,
    instability_cells,
    instability_figure,
    instability_records,
)
from lottery_style.tools.report_paired import side_by_side, verdict_cells, verdict_header

log = logging.getLogger(__name__)


def averaged_fields() -> tuple[str, ...]:
    """What :func:`aggregate` averages over seeds: the sparsity, every declared metric (``core.metrics``, an
    extension's included), the per-part sparsity and the cost (:mod:`.report_cost`)."""
    return ("sparsity", *METRICS, *(f"sparsity_{part}" for part in PARTS), *COST_FIELDS)


class ReportError(ValueError):
    """A folder that holds no usable run; the one-line message names it."""


@dataclass
class Run:
    """One run folder's records."""

    path: Path
    model: str
    method: str
    seed: int
    identity: dict[str, Any]  # tickets.identity.identity of its config: equal but for the seed = replicates
    rows: list[dict[str, Any]]  # one per finished round: tickets.verdict.summary_fields() and report_cost.round_cost
    evaluation: str | None = None  # the rounds' records are those of this `lottery-style evaluate` name

    def series_key(self) -> str:
        return json.dumps({k: v for k, v in self.identity.items() if k not in REPLICATE_KEYS}, sort_keys=True, default=str)

    def round_folder(self, round_index: int) -> Path:
        """Where round ``round_index``'s records are: its folder, or its evaluation's."""
        ticket_dir = round_dir(self.path, round_index)
        return ticket_dir if self.evaluation is None else evaluation_dir(ticket_dir, self.evaluation)

    def grid(self, round_index: int) -> Path | None:
        path = self.round_folder(round_index) / GRID_FILE
        return path if path.is_file() else None

    def per_pair_E(self, round_index: int) -> list[float] | None:
        """Round ``round_index``'s E on every pair (None where no record holds them: a run recorded before they
        were kept, a summary whose round folders are gone)."""
        folder = self.round_folder(round_index)
        return read_metrics(folder).get("per_pair_E") if (folder / METRICS_FILE).is_file() else None

    def weight_parts(self) -> list[str]:
        """The parts of the run's model that hold prunable weights (AdaIN's transform holds none), from round 0's
        per-layer record; every part for an older run without one."""
        layers = read_metrics(round_dir(self.path, 0)).get("sparsity_layers")
        if not layers:
            return list(PARTS)
        return [part for part in PARTS if any(part_of(name) == part for name in layers)]


# ----------------------------------------------------------------- loading
def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Each path is a run folder (it has ``round_00``; its branches in ``branches/<method>/`` come with it) or a
    folder holding run folders at any depth (a sweep)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ReportError(f"run folder {path} does not exist")
        runs = sorted(p.parent for p in path.rglob(round_dir(path, 0).name) if p.is_dir())  # a run, its branches, or a sweep
        if not runs:
            raise ReportError(f"{path} holds no run folder: expected a folder with round_00/ inside (or a sweep of them)")
        found += [run for run in runs if run not in found]
    return found


def _evaluated_rows(path: Path, tolerance: float, evaluation: str) -> list[dict[str, Any]]:
    """The rows of a run's rounds evaluated under ``evaluation``; its dense round 0 must be one of them."""
    if evaluated_rounds(path, evaluation)[:1] != [round_dir(path, 0)]:
        raise ReportError(
            f"{path} has no evaluation {evaluation!r} of its round 0: "
            f"expected `lottery-style evaluate {path} ... --name {evaluation}` first"
        )
    return summary_rows(path, tolerance, evaluation)[0]


def load_run(path: Path, evaluation: str | None = None) -> Run:
    """A run's records: its summary, or its rounds' metrics; with ``evaluation``, its rounds' records under that
    `lottery-style evaluate` name (round 0 must have one)."""
    config_file = round_dir(path, 0) / ROUND_CONFIG
    if not config_file.is_file():
        raise ReportError(f"{path} has no finished round 0 ({config_file} is missing)")
    cfg = OmegaConf.load(config_file)
    try:  # the run's own models, methods and metrics, before its identity and rows are read
        load_extensions(OmegaConf.select(cfg, "extensions", default=None) or [])
    except ConfigError as error:
        raise ReportError(f"{path}: {error}") from None
    tolerance = float(OmegaConf.select(cfg, "pruning.matching_tolerance", default=0.0))
    summary = path / SUMMARY_JSON
    if evaluation is not None:
        rows = _evaluated_rows(path, tolerance, evaluation)
    elif summary.is_file():
        rows = json.loads(summary.read_text())["rounds"]
    else:
        try:
            rows, _ = summary_rows(path, tolerance)
        except (ValueError, OSError) as error:  # no finished round 0, a round without metrics.json
            raise ReportError(f"{path} has no summary.json and its rounds cannot make one: {error}") from None
    return Run(path=path, model=str(cfg.model.name), method=str(rows[0]["method"]), seed=int(cfg.seed),
               identity=identity(cfg), rows=_with_cost(path, rows), evaluation=evaluation)  # fmt: skip


def _with_cost(path: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their ticket's cost (:func:`round_cost`), from the round's training-time ``metrics.json``:
    the cost is the ticket's, whichever pairs judge it (none where the round folder is gone)."""

    def recorded(folder: Path) -> dict[str, Any]:
        return read_metrics(folder) if (folder / METRICS_FILE).is_file() else {}

    return [{**row, **round_cost(recorded(round_dir(path, int(row["round"]))))} for row in rows]


def load_runs(paths: Sequence[str | Path], evaluation: str | None = None) -> list[Run]:
    return [load_run(path, evaluation) for path in find_run_dirs(paths)]


def flat_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per (run, round) with the run's model, method, seed and folder: a table for pandas."""
    return [{"run": str(run.path), "model": run.model, "seed": run.seed, **row, "method": run.method} for run in runs for row in run.rows]


def _method_key(method: str) -> tuple[bool, str]:
    """IMP first, then by name (a control's ``_own`` and ``_shuffled`` variants beside it)."""
    return (method != IMP, method)


def _replicates(runs: Sequence[Run]) -> list[Run]:
    """One run per seed (the one with the most finished rounds), sorted by seed; a repeated seed is no new replicate."""
    by_seed: dict[int, Run] = {}
    for run in runs:
        kept = by_seed.setdefault(run.seed, run)
        if kept is not run:
            log.warning("%s and %s are the same experiment with the same seed %d: counted once", kept.path, run.path, run.seed)
            by_seed[run.seed] = max(kept, run, key=lambda r: len(r.rows))
    return [by_seed[seed] for seed in sorted(by_seed)]


def _label(method: str, key: str, siblings: Sequence[str], defaults: Mapping[str, Any]) -> str:
    """The method, plus the keys whose values differ between this method's series (a key left out is at its default)."""
    if len(siblings) == 1:
        return method
    mine, others = json.loads(key), [json.loads(k) for k in siblings]
    varying = sorted(k for k in set().union(*others) if len({json.dumps(o.get(k), default=str) for o in others}) > 1)
    return ", ".join([method, *(f"{k}={mine.get(k, defaults.get(k))}" for k in varying)])


def group_runs(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """model -> series label -> replicates (one per seed), IMP first; see the module docstring."""
    series: dict[str, dict[tuple[str, str], list[Run]]] = {}
    for run in runs:
        series.setdefault(run.model, {}).setdefault((run.method, run.series_key()), []).append(run)
    groups: dict[str, dict[str, list[Run]]] = {}
    for model, members in sorted(series.items()):
        keys_of = {m: sorted(k for meth, k in members if meth == m) for m, _ in members}
        defaults = schema_defaults(model)
        labelled = {_label(method, key, keys_of[method], defaults): _replicates(found) for (method, key), found in members.items()}
        groups[model] = {label: labelled[label] for label in sorted(labelled, key=lambda l: (_method_key(labelled[l][0].method), l))}
    return groups


# ------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _sparsity_key(row: Mapping[str, Any]) -> float:
    return round(float(row["sparsity"]), 6)


def _dense_E(runs: Sequence[Run]) -> tuple[float, float]:
    """Mean and std over replicates of the dense round 0's E."""
    return mean_std([run.rows[0]["E"] for run in runs])


def _judged_sparsities(runs: Sequence[Run]) -> set[float]:
    """The sparsities (as :func:`_sparsity_key`) every replicate reached: the only ones a verdict over them judges."""
    return set.intersection(*({_sparsity_key(row) for row in run.rows} for run in runs))


def aggregate(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per sparsity (replicates aligned by sparsity, not round index): the replicates that reached it (``seeds``) and
    their round there (``rounds``), mean and std over them of every metric, how many match (the paper's rule, per
    seed) and, where every replicate reached it (``judged``), the across-replicate verdicts (None where not judged):
    ``matching_mean``, the paper's rule on the means (mean E <= dense mean), and ``matching_replicates``, Chen et
    al.'s (mean E <= dense mean + 1 std)."""
    by_sparsity: dict[float, list[dict[str, Any]]] = {}
    for run in runs:
        for row in run.rows:
            by_sparsity.setdefault(_sparsity_key(row), []).append(row)
    dense_mean, dense_std = _dense_E(runs)
    judged = _judged_sparsities(runs)
    points = []
    for sparsity in sorted(by_sparsity):
        rows = by_sparsity[sparsity]
        point: dict[str, Any] = {"round": rows[0]["round"], "rounds": [row["round"] for row in rows], "seeds": len(rows),
                                 "judged": sparsity in judged}  # fmt: skip
        for metric in averaged_fields():
            values = [row[metric] for row in rows if row.get(metric) is not None]
            if values:
                point[f"{metric}_mean"], point[f"{metric}_std"] = mean_std(values)
        point["matching"] = sum(bool(row["matching"]) for row in rows)
        point["matching_mean"] = point["E_mean"] <= dense_mean if point["judged"] else None  # the paper's, on means
        point["matching_replicates"] = point["E_mean"] <= dense_mean + dense_std if point["judged"] else None
        points.append(point)
    return points


def dense_point(runs: Sequence[Run]) -> dict[str, Any]:
    """The dense model over every run, as an :func:`aggregate` point: per seed the mean of its runs' round 0 (the
    series of one seed that differ only in how they prune share one dense round), then mean and std over the seeds,
    so a seed's dense model counts once however many series start from it."""
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run.rows[0])
    point: dict[str, Any] = {"round": 0, "seeds": len(by_seed), "judged": True}
    for field in averaged_fields():
        per_seed = [[row[field] for row in rows if row.get(field) is not None] for rows in by_seed.values()]
        if all(per_seed):
            point[f"{field}_mean"], point[f"{field}_std"] = mean_std([statistics.fmean(values) for values in per_seed])
    return point


def replicate_verdict(runs: Sequence[Run]) -> dict[str, Any]:
    """Chen et al.'s rule over the n replicates of one series, at the sparsities all n reached: the dense E (mean,
    std over replicates), the extreme sparsity and the highest matching sparsity (mean E within one std of the dense
    mean), and the sparsities left unjudged because only some replicates reached them."""
    points = aggregate(runs)
    judged = [p for p in points if p["judged"]]
    dense_mean, dense_std = _dense_E(runs)
    extreme, highest = _extreme([p["sparsity_mean"] for p in judged], [p["matching_replicates"] for p in judged])
    return {"replicates": len(runs), "dense_E_mean": dense_mean, "dense_E_std": dense_std,
            "extreme_sparsity": extreme, "highest_matching_sparsity": highest,
            "not_judged": [p["sparsity_mean"] for p in points if not p["judged"]]}  # fmt: skip


def seed_verdict(run: Run, runs: Sequence[Run]) -> tuple[float, float]:
    """One replicate's extreme and highest matching sparsity under the paper's rule (its rounds' ``matching``), at
    the sparsities every replicate of ``runs`` reached, so that the seeds' values compare like with like."""
    judged = _judged_sparsities(runs)
    rows = [row for row in run.rows if _sparsity_key(row) in judged]
    return _extreme([float(row["sparsity"]) for row in rows], [bool(row["matching"]) for row in rows])


def extreme_sparsity(runs: Sequence[Run]) -> dict[str, Any]:
    """The seeds, each seed's extreme and highest matching sparsity under the paper's rule (values, mean, std; see
    :func:`seed_verdict`) and the across-replicate verdict (:func:`replicate_verdict`)."""
    found: dict[str, Any] = {"seeds": [run.seed for run in runs]}
    per_seed = zip(*(seed_verdict(run, runs) for run in runs))
    for name, values in zip(("extreme_sparsity", "highest_matching_sparsity"), map(list, per_seed)):
        mean, std = mean_std(values)
        found[name] = {"values": values, "mean": mean, "std": std}
    return {**found, "replicates": replicate_verdict(runs)}


# ---------------------------------------------------------------- figures
# What an axis calls the units a run's sparsity counts, per granularity (report_cost.round_cost records it).
UNIT_NOUNS = {Granularity.weight: "weights", Granularity.channel: "channels"}


def pruned_unit(runs: Sequence[Run]) -> str:
    """What the runs' sparsity counts, for an axis label: a channel ticket's schedule counts channels, not weights
    ("weights or channels" when the runs mix both, in the enum's order)."""
    recorded = {Granularity(run.rows[0]["granularity"]) for run in runs}
    return " or ".join(noun for granularity, noun in UNIT_NOUNS.items() if granularity in recorded)


def error_figure(methods: Mapping[str, Sequence[Run]], metrics: Sequence[str] = ("E",), title: str = "") -> Figure:
    """One panel per metric against weights (or channels, :func:`pruned_unit`) remaining (:func:`remaining_axis`):
    a line per series (mean over its n seeds, shaded +-std), the dense round 0 (mean over every run) dashed, and
    each series' extreme sparsity across seeds (:func:`replicate_verdict`) as a dotted line in its colour.
    Sparsities only some of a series' seeds reached continue its line dashed with hollow markers, labelled as not
    judged."""
    figure = Figure(figsize=(5.5 * len(metrics), 4), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    sparsities = [row["sparsity"] for runs in methods.values() for run in runs for row in run.rows]
    unit = pruned_unit([run for runs in methods.values() for run in runs])
    for axis, metric in zip(axes, metrics):
        dense = [run.rows[0][metric] for runs in methods.values() for run in runs]
        axis.axhline(statistics.fmean(dense), color="black", linestyle="--", linewidth=1, label="dense (round 0)")
        for method, runs in methods.items():
            points = aggregate(runs)
            judged = [p for p in points if p["judged"]]
            x = [remaining(p["sparsity_mean"]) for p in judged]
            mean = [p[f"{metric}_mean"] for p in judged]
            std = [p[f"{metric}_std"] for p in judged]
            line = axis.plot(x, mean, marker="o", label=f"{method} (n={len(runs)})")[0]
            axis.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                              color=line.get_color(), alpha=0.2)  # fmt: skip
            partial = judged[-1:] + [p for p in points if not p["judged"]]  # from the last judged point on
            if len(partial) > len(judged[-1:]):
                axis.plot([remaining(p["sparsity_mean"]) for p in partial], [p[f"{metric}_mean"] for p in partial],
                          color=line.get_color(), linestyle="--", marker="o", markerfacecolor="none",
                          markevery=slice(len(judged[-1:]), None),
                          label=f"{method}: fewer than {len(runs)} seeds, not judged")  # fmt: skip
            extreme = replicate_verdict(runs)["extreme_sparsity"]
            if extreme > 0:
                axis.axvline(remaining(extreme), color=line.get_color(), linestyle=":", linewidth=1,
                             label=f"{method} extreme: {100 * extreme:.1f}% sparse")  # fmt: skip
        remaining_axis(axis, sparsities, unit)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def plot_error_vs_sparsity(
    methods: Mapping[str, Sequence[Run]], path: str | Path, metrics: Sequence[str] = ("E",), title: str = ""
) -> Path:
    return atomic_savefig(error_figure(methods, metrics, title), path)


# ------------------------------------------------------------------- page
def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _pm(mean: float, std: float, fmt: str = ".5g") -> str:
    return f"{mean:{fmt}} ± {std:{fmt}}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _extreme_rows(methods: Mapping[str, Sequence[Run]]) -> list[list[Any]]:
    rows = []
    for method, runs in methods.items():
        ext = extreme_sparsity(runs)
        across = ext["replicates"]
        rows.append([
            method, len(runs), ", ".join(map(str, ext["seeds"])),
            *(f"{_pct(ext[name]['mean'])} ± {_pct(ext[name]['std'])}" for name in ("extreme_sparsity", "highest_matching_sparsity")),
            _pm(across["dense_E_mean"], across["dense_E_std"]), _pct(across["extreme_sparsity"]),
            _pct(across["highest_matching_sparsity"]), ", ".join(map(_pct, across["not_judged"])) or "-",
        ])  # fmt: skip
    return rows


def _across(point: Mapping[str, Any], replicates: int) -> str:
    if not point["judged"]:
        return f"not judged (n={point['seeds']} of {replicates})"
    return "yes" if point["matching_replicates"] else "no"


def _round_rows(runs: Sequence[Run], metrics: Sequence[Metric]) -> list[list[str]]:
    def cell(point: Mapping[str, Any], metric: Metric) -> str:
        mean = point.get(f"{metric.name}_mean")  # absent where no seed recorded it (a run older than the metric)
        return "-" if mean is None else _pm(mean, point[f"{metric.name}_std"], metric.fmt)

    return [
        [
            p["round"], _pct(p["sparsity_mean"]), *(cell(p, metric) for metric in metrics), f"{p['matching']}/{p['seeds']}",
            _across(p, len(runs)), *(_pct(p.get(f"sparsity_{part}_mean", 0.0)) for part in PARTS), *cost_cells(p),
        ]
        for p in aggregate(runs)
    ]  # fmt: skip


def round_header(metrics: Sequence[Metric]) -> tuple[str, ...]:
    """The round table's columns: each metric's header with the way it is better."""
    return ("round", "sparsity", *(f"{m.header} {'↓' if m.lower_is_better else '↑'}" for m in metrics),
            "matching seeds / n seeds that reached it (E <= dense)",
            "matching across seeds (mean E <= dense mean + 1 std)", *(f"{part} sparsity" for part in PARTS),
            *COST_HEADER)  # fmt: skip


def _grids(methods: Mapping[str, Sequence[Run]]) -> list[str]:
    """The first seed's dense grid, and per method the first seed's grid at its extreme sparsity
    (:func:`seed_verdict`), else at its last round."""
    first = next(iter(methods.values()))[0]
    shown = [(first.grid(0), f"dense (round 0), {first.method} seed {first.seed}")]
    for method, runs in methods.items():
        run = runs[0]
        extreme, _ = seed_verdict(run, runs)
        at_extreme = [i for i, row in enumerate(run.rows) if i > 0 and float(row["sparsity"]) == extreme]
        index = at_extreme[0] if at_extreme else len(run.rows) - 1
        if index > 0:
            row = run.rows[index]
            verdict = "extreme sparsity" if at_extreme else f"last round, {'' if row['matching'] else 'not '}matching"
            caption = f"{method} seed {run.seed}, round {index}: {_pct(row['sparsity'])} ({verdict})"
            shown.append((run.grid(index), caption))
    return [_image(path, caption) for path, caption in shown if path is not None]


PAGE_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "img{max-width:100%}figure{display:inline-block;margin:.5em;vertical-align:top}"
)
EXTREME_HEADER = ("series", "n (seeds)", "seed values", "extreme sparsity per seed (E <= dense up to it)",
                  "highest matching sparsity per seed", "dense E across seeds",
                  "extreme sparsity across seeds (mean E <= dense mean + 1 std up to it)",
                  "highest matching sparsity across seeds", "not judged (reached by fewer than n seeds)")  # fmt: skip


def _recorded(runs: Sequence[Run], name: str) -> bool:
    """Whether every round of ``runs`` recorded ``name`` (a run recorded before a metric existed has none)."""
    return all(row.get(name) is not None for run in runs for row in run.rows)


def _cost_section(model: str, methods: Mapping[str, Sequence[Run]], out_dir: Path, numbers: dict[str, Any]) -> str:
    """E (and the structure) against kept FLOPs per series (:mod:`.report_cost`), or the line that says why not.
    Each series' ``quality_vs_cost`` in ``numbers`` holds what its line is drawn from and the dense point."""
    everyone = [run for runs in methods.values() for run in runs]
    why_not = missing_cost(everyone)
    if why_not is not None:
        for label in methods:
            numbers[label]["quality_vs_cost"] = {"figure": None, "why_not": why_not}
        return f"<p>{html.escape(why_not)}</p>"
    metrics = [name for name in ("E", "structure") if _recorded(everyone, name)]
    dense = cost_arrays([dense_point(everyone)], metrics)
    path = out_dir / f"quality_vs_flops-{model}.png"
    for label, runs in methods.items():
        numbers[label]["quality_vs_cost"] = {
            "figure": path.name, "metrics": metrics, "legend": series_label(label, runs[0].rows[0]["granularity"], len(runs)),
            "points": cost_arrays(numbers[label]["rounds"], metrics), "dense": dense,
        }  # fmt: skip
    lines = {cost["legend"]: cost["points"] for cost in (numbers[label]["quality_vs_cost"] for label in methods)}
    atomic_savefig(cost_figure(lines, dense, metrics, f"{model}: quality against cost"), path)
    return _image(path, path.name)


def _early_bird_section(model: str, runs: Sequence[Run], out_dir: Path, numbers: dict[str, Any]) -> str:
    """Mask distance vs step and the early-bird tickets' E and cost beside IMP's (:mod:`.report_early_bird`)."""
    early_bird_runs = [run for run in runs if early_bird_record(run) is not None]
    if not early_bird_runs:
        return ""
    path = out_dir / f"early_bird_distance-{model}.png"
    atomic_savefig(distance_figure(early_bird_runs, f"{model}: early-bird mask distance"), path)
    rows = comparison(early_bird_runs, runs)
    numbers["early_bird_vs_imp"] = rows  # beside the series labels (one of which may be "early_bird")
    return (f"<h3>Early-bird tickets (You et al. 2020): E and cost (training steps) beside IMP's</h3>{_image(path, path.name)}"
            f"{_table(COMPARISON_HEADER, comparison_cells(rows))}")  # fmt: skip


def _instability_section(model: str, runs: Sequence[Run], out_dir: Path, numbers: dict[str, Any]) -> str:
    """Barrier vs sparsity and vs k, E along the path (:mod:`.report_instability`)."""
    records = instability_records(runs)
    if not records:
        return ""
    path = out_dir / f"instability-{model}.png"
    atomic_savefig(instability_figure(records, f"{model}: instability (linear mode connectivity)", pruned_unit(runs)), path)
    numbers["instability"] = records  # beside the series labels, none of which is "instability"
    return (f"<h3>Instability analysis (Frankle et al. 2020): error barrier between two copies</h3>"
            f"{_image(path, path.name)}{_table(INSTABILITY_HEADER, instability_cells(records))}")  # fmt: skip


def _verdicts_section(methods: Mapping[str, Sequence[Run]], numbers: Mapping[str, Any], margin: float) -> str:
    """The three verdicts side by side per series (:mod:`.report_paired`)."""
    tables = "".join(
        f"<h4>{html.escape(m)}</h4>{_table(verdict_header(margin), verdict_cells(numbers[m]['paired']))}" for m in methods
    )
    return ("<h3>Verdicts side by side (at the sparsities all n seeds reached; paired: each seed's ticket against its "
            f"own dense round on the same pairs, non-inferiority margin {100 * margin:g}%)</h3>{tables}")  # fmt: skip


def _source_line(evaluation: str | None) -> str:
    if evaluation is None:
        return "<p>Every number is from the pairs each run was judged on in training.</p>"
    return (f"<p>Every number is from the evaluation <b>{html.escape(evaluation)}</b> (round_XX/evaluations/"
            f"{html.escape(evaluation)}/, lottery-style evaluate), not from the training-time pairs.</p>")  # fmt: skip


def write_report(
    paths: Sequence[str | Path], out_dir: str | Path, evaluation: str | None = None, margin: float = MARGIN
) -> Path:
    """Figures (PNG), ``report.json`` and a self-contained ``report.html`` in ``out_dir``; returns the page.
    ``evaluation``: judge the rounds' records under that `lottery-style evaluate` name instead of the
    training-time ones; ``margin``: the paired verdict's relative non-inferiority margin."""
    check_margin(margin)
    runs = load_runs(paths, evaluation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections, numbers = [], {}
    for model, methods in group_runs(runs).items():
        curve = plot_error_vs_sparsity(methods, out_dir / f"E_vs_sparsity-{model}.png", ("E",), f"{model}: test error E")
        terms = plot_error_vs_sparsity(methods, out_dir / f"terms_vs_sparsity-{model}.png", ("E_content", "E_style"), model)
        figures = [curve, terms]
        everyone = [r for rs in methods.values() for r in rs]
        metrics = table_metrics([row for run in everyone for row in run.rows])
        for metric in metrics:  # a figure of each other metric every round recorded (the structure, an extension's)
            if _recorded(everyone, metric.name) and metric.name not in ("E", "E_content", "E_style"):
                path, title = out_dir / f"{metric.name}_vs_sparsity-{model}.png", f"{model}: {metric.header}, {metric.help}"
                figures.append(plot_error_vs_sparsity(methods, path, (metric.name,), title))
        numbers[model] = {}
        for m, r in methods.items():
            points = aggregate(r)
            numbers[model][m] = {"extreme": extreme_sparsity(r), "rounds": points, "paired": side_by_side(r, points, margin),
                                 "runs": [str(x.path) for x in r]}  # fmt: skip
        per_method = "".join(f"<h3>{html.escape(m)}</h3>{_table(round_header(metrics), _round_rows(r, metrics))}"
                             for m, r in methods.items())  # fmt: skip
        cost = _cost_section(model, methods, out_dir, numbers[model])
        early_bird = _early_bird_section(model, everyone, out_dir, numbers[model])
        instability = _instability_section(model, everyone, out_dir, numbers[model])
        sections.append(
            f"<h2>{html.escape(model)}</h2>{''.join(_image(figure, figure.name) for figure in figures)}{cost}"
            f"<h3>Extreme sparsity (per seed: mean ± std; across seeds: Chen et al. 2020; at the sparsities all n seeds reached)</h3>{_table(EXTREME_HEADER, _extreme_rows(methods))}"
            f"{_verdicts_section(methods, numbers[model], margin)}"
            f"<h3>Rounds by sparsity (mean ± std over seeds; matching: seeds whose ticket matches)</h3>{per_method}"
            f"{early_bird}{instability}<h3>Stylized grids (content | style | output)</h3>{''.join(_grids(methods))}"
        )
    run_rows = [[str(r.path), r.model, r.method, r.seed, len(r.rows)] for r in runs]  # every folder given, duplicates too
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>lottery-style report</title>"
        f"<style>{PAGE_STYLE}</style></head><body><h1>lottery-style report</h1>{_source_line(evaluation)}"
        f"{''.join(sections)}<h2>Runs</h2>{_table(('folder', 'model', 'method', 'seed', 'rounds'), run_rows)}</body></html>"
    )
    atomic_write_json(out_dir / REPORT_JSON, numbers)
    atomic_write_text(out_dir / REPORT_HTML, page)
    return out_dir / REPORT_HTML
