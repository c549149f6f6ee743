"""Options that explain themselves: help on every schema field, `lottery-style options`, the reference page."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from lottery_style.cli import main
from lottery_style.core.config import PruningConfig, field_metadata, option, root_schema
from lottery_style.models import MODEL_REGISTRY
from lottery_style.tools.options import REFERENCE_PAGE, help_of, option_rows, reference_markdown

ROOT = Path(__file__).resolve().parent.parent


def without_help(node: DictConfig, prefix: str = "") -> list[str]:
    """Every option and section of a schema node, however deep, that has no help text."""
    missing = []
    for key, child in node.items_ex(resolve=False):
        name = f"{prefix}{key}"
        if not help_of(node, str(key)).strip():
            missing.append(name)
        if isinstance(child, DictConfig):
            missing += without_help(child, f"{name}.")
    return missing


def test_every_schema_field_has_help() -> None:
    """The root schema (every method's options section in it) and every architecture's: a field without help
    fails here, naming it."""
    schemas = {"": root_schema(), **{f"model={name}: ": entry.schema() for name, entry in MODEL_REGISTRY.items()}}
    assert {"early_bird", "instability"} <= set(schemas[""].pruning)
    assert [f"{label}{key}" for label, schema in schemas.items() for key in without_help(schema)] == []


@dataclasses.dataclass
class Section:
    documented: int = option(1, help="has help")
    bare: int = 2


@dataclasses.dataclass
class Schema:
    section: Section = option(factory=Section, help="a section")
    flag: bool = False


def test_the_help_check_finds_a_field_without_help() -> None:
    assert without_help(OmegaConf.structured(Schema)) == ["section.bare", "flag"]


def test_a_subclass_keeps_the_help_of_a_field_whose_default_it_changes() -> None:
    rows = {row.key: row for row in option_rows(MODEL_REGISTRY["lst"].schema(), "model")}
    assert "max-pooling" in rows["model.encoder.ceil_mode"].help and rows["model.encoder.ceil_mode"].default == "false"


def test_options_lists_a_groups_options_with_help_default_and_range(capsys) -> None:
    assert main(["options", "pruning"]) == 0
    out = capsys.readouterr().out.splitlines()
    rate = out.index("pruning.rate = 0.2    (float; in (0, 1))")
    assert out[rate + 1].strip() == field_metadata(PruningConfig, "rate")["help"]
    assert main(["options", "training"]) == 0  # conf/train.yaml's value, the schema's default beside it
    assert "training.steps = 60    (int; >= 1; schema default 160000)" in capsys.readouterr().out.splitlines()


def test_options_of_a_groups_choice_and_with_overrides(capsys) -> None:
    assert main(["options", "model=lst"]) == 0
    assert "model.level = 4    (int; one of 3, 4)" in capsys.readouterr().out.splitlines()
    assert main(["options", "training", "experiment=quickstart"]) == 0
    assert "training.steps = 600    (int; >= 1; schema default 160000)" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("argv", "named"), [(["options", "pruningg"], "options 'pruningg' is not a config group"),
                                             (["options", "data", "data.bogus=1"], "data.bogus")])  # fmt: skip
def test_options_of_an_unknown_group_or_key_is_one_line(argv: list[str], named: str, capsys) -> None:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lottery-style options: error: ") and named in lines[0], lines


def test_the_committed_configuration_reference_is_the_generated_one() -> None:
    """docs/reference/configuration.md is written by `lottery-style options --markdown`; regenerate it after
    changing a schema field."""
    page = reference_markdown()
    assert (ROOT / REFERENCE_PAGE).read_text() == page
    assert "| `pruning.rate` | float | `0.2` |  | in (0, 1) |" in page  # a schema default, with its range
    assert "| `training.steps` | int | `160000` | `60` |" in page  # and the root config's own value
    assert "### model=lst" in page and "`model.level`" in page.split("### model=lst")[1]
