"""Options that explain themselves: every config option with its help, default and valid values.

The help, the default and the range of an option are declared once, on its
schema field (``core.config.option``); this module only reads them, for
``lottery-style options GROUP`` in the terminal and for the configuration
reference page (``docs/reference/configuration.md``), which
``lottery-style options --markdown`` writes and a test compares with the
committed page. Beside the schema default it shows what the composed config
holds (``conf/train.yaml``, a preset or the given overrides set some options),
so that the number printed is the one a run would use.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lottery_style.core.config import ModelConfig, TrainConfig, field_metadata, root_schema
from lottery_style.engine.compose import compose
from lottery_style.models import MODEL_REGISTRY

REFERENCE_PAGE = "docs/reference/configuration.md"  # relative to the repository root


@dataclass(frozen=True)
class OptionRow:
    """One leaf option: its dotted key, what it accepts, its schema default, its valid values and its help."""

    key: str
    type: str
    default: str
    valid: str
    help: str


def _type_name(hint: Any) -> str:
    """A type as a config user writes values of it: ``float``, ``int or null``, ``list of float``, an enum's choices."""
    if hint is Any:
        return "any"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return " | ".join(str(member.value) for member in hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (list, Sequence):
        return f"list of {_type_name(args[0])}" if args else "list"
    return getattr(hint, "__name__", str(hint))


def shown(value: Any) -> str:
    """A value as it is written on the command line or in YAML."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, enum_to_str=True)
    if value is None:
        return "null"
    if value == MISSING:
        return "(required)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)


def help_of(node: DictConfig, key: str) -> str:
    """The help of ``node``'s option or section ``key``: its schema field's, or for a method's own section (which
    ``core.config.root_schema`` adds beside the fields) the first line of its options class's docstring."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema) and key in {spec.name for spec in dataclasses.fields(schema)}:
        return str(field_metadata(schema, key).get("help", ""))
    child = dict(node.items_ex(resolve=False)).get(key)
    section = OmegaConf.get_type(child) if isinstance(child, DictConfig) else None
    return (section.__doc__ or "").strip().split("\n")[0] if dataclasses.is_dataclass(section) else ""


def option_rows(node: DictConfig, prefix: str) -> list[OptionRow]:
    """Every leaf option of a schema node (its values are the defaults), sections expanded, in declaration order;
    ``help`` is empty where a field has none (a test forbids that)."""
    schema = OmegaConf.get_type(node)
    hints = typing.get_type_hints(schema) if dataclasses.is_dataclass(schema) else {}
    rows: list[OptionRow] = []
    for key, value in node.items_ex(resolve=False):
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, DictConfig):
            rows.extend(option_rows(value, name))
            continue
        valid = field_metadata(schema, str(key)).get("range")
        rows.append(OptionRow(name, _type_name(hints.get(str(key), Any)), shown(value), "" if valid is None else str(valid),
                              help_of(node, str(key))))  # fmt: skip
    return rows


TOP = "top"  # ``lottery-style options top``: the root's own options (seed, experiment_name, ...)


def sections() -> list[str]:
    """The root's sections, in the schema's order (``model`` is typed per architecture, hence ``Any`` there)."""
    hints = typing.get_type_hints(TrainConfig)
    return [spec.name for spec in dataclasses.fields(TrainConfig) if dataclasses.is_dataclass(hints[spec.name]) or spec.name == "model"]


def section_help(name: str) -> str:
    return str(field_metadata(TrainConfig, name).get("help", ""))


def group_rows(group: str, cfg: DictConfig) -> list[OptionRow]:
    """The options of a root section (``pruning``, ``model``, ...) or of the root itself (:data:`TOP`), with the
    schema's defaults; ``model`` is the schema of the architecture ``cfg`` chose."""
    if group == TOP:
        return [row for row in option_rows(root_schema(), "") if row.key.partition(".")[0] not in sections()]
    if group == "model":
        return option_rows(MODEL_REGISTRY[cfg.model.name].schema(), group)
    return option_rows(root_schema()[group], group)


def _now(cfg: DictConfig, key: str) -> str:
    """What the composed config holds at ``key`` (an interpolation as written: it resolves only in a run)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if OmegaConf.is_interpolation(node, leaf):
        return str(OmegaConf.to_container(node, resolve=False)[leaf])
    return shown(OmegaConf.select(cfg, key, throw_on_missing=False))


def format_group(group: str, overrides: Sequence[str] = ()) -> str:
    """``lottery-style options GROUP [overrides]``: each option with its value, schema default, valid values, help.

    ``GROUP=CHOICE`` (``model=sanet``) is the group under that choice, as if the override were given too.
    """
    name, _, choice = group.partition("=")
    if name not in (TOP, *sections()):
        raise ValueError(f"options {name!r} is not a config group: expected one of {', '.join((*sections(), TOP))}")
    overrides = [*overrides, group] if choice else list(overrides)
    try:
        cfg = compose(overrides)
    except (HydraException, OmegaConfBaseException) as error:  # a misspelled key or choice
        raise ValueError(f"the overrides {' '.join(overrides)} do not compose: {error}") from None
    command = " ".join(["lottery-style", *overrides])
    lines = [f"{name} options: the value `{command}` runs with (type; valid values; schema default if other)", ""]
    for row in group_rows(name, cfg):
        now = _now(cfg, row.key)
        facts = [row.type, *([row.valid] if row.valid else []), *([f"schema default {row.default}"] if now != row.default else [])]
        lines += [f"{row.key} = {now}    ({'; '.join(facts)})", f"    {row.help}"]
    return "\n".join(lines)


def format_overview() -> str:
    """``lottery-style options``: the groups with one line each, and how to list one."""
    lines = ["config groups (lottery-style options GROUP: its options with help, default and valid values):", ""]
    lines += [f"  {name:<10} {section_help(name)}" for name in sections()]
    top = ", ".join(row.key for row in option_rows(root_schema(), "") if row.key.partition(".")[0] not in sections())
    lines += [f"  {TOP:<10} the root's own options: {top}", "",
              "A group under one of its choices: lottery-style options model=sanet (or options pruning pruning=snip)."]  # fmt: skip
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no column break, no HTML tag."""
    return html.escape(text, quote=False).replace("|", "\\|")


def _markdown_table(rows: Sequence[OptionRow], cfg: DictConfig | None) -> list[str]:
    """A table of ``rows``; with ``cfg`` (the root config) a column of the values it sets otherwise."""
    lines = ["| option | type | default | valid | help |", "| --- | --- | --- | --- | --- |"]
    if cfg is not None:
        lines = ["| option | type | default | root config | valid | help |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        cells = [f"`{row.key}`", _cell(row.type), f"`{row.default}`"]
        if cfg is not None:
            now = _now(cfg, row.key)
            cells.append(f"`{now}`" if now != row.default else "")
        cells += [_cell(row.valid), _cell(row.help)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def reference_markdown() -> str:
    """The configuration reference page: every option of the root schema and of each of the package's models."""
    root = compose([])
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `lottery-style options --markdown` from the schemas' help; a test compares it. -->",
        "",
        "Every option, with its type, its schema default and its valid values. *root config* is what",
        "`conf/train.yaml` sets instead, where it differs (the smoke run that `lottery-style` with no arguments starts);",
        "presets (`experiment=...`) and the command line set others. `lottery-style options GROUP` prints the",
        "same in the terminal, with the values of your own overrides.",
        "",
        "## Top level",
        "",
        *_markdown_table(group_rows(TOP, root), root),
    ]
    for group in sections():
        if group != "model":
            lines += ["", f"## {group}", "", f"{section_help(group).capitalize()}.", "", *_markdown_table(group_rows(group, root), root)]
    common = {row.key: row for row in option_rows(OmegaConf.structured(ModelConfig), "model")}
    lines += ["", "## model", "", "Options every architecture has (`model=<name>` chooses one):", "",
              *_markdown_table(list(common.values()), None)]  # fmt: skip
    for name, entry in MODEL_REGISTRY.items():
        if not entry.config.__module__.startswith("lottery_style."):
            continue  # an extension's model is not the package's reference
        own = [row for row in option_rows(entry.schema(), "model") if common.get(row.key) != row]
        lines += ["", f"### model={name}", "", f"What `model={name}` adds or sets otherwise:", "",
                  *_markdown_table(own, None)]  # fmt: skip
    return "\n".join(lines) + "\n"
