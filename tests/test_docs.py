"""The documentation keeps its promises: a short README, no reference to a file the repository lacks, and every
command it shows either composed here at test size or marked as measured, with its number.

Commands are read from the README and every page of ``docs/``: each ``bash`` block (its ``\\`` continuations
joined, its ``NAME="..."`` assignments expanded, ``<placeholder>`` words filled in, ``&&`` and ``;`` splitting
one line into several commands) and each inline code span that holds ``lottery-style`` with arguments. A
``lottery-style`` command is checked as the console script would start it, without running anything: a tool's
arguments are parsed by its own parser, and a training command's group choices are checked
(:func:`lottery_style.engine.validation.check_choices`) and every job it launches (``-m``: the command line's
sweeps and the experiment's ``hydra.sweeper.params``, expanded as Hydra's basic sweeper does) is composed at
test size (``debug=tiny`` unless the command names a ``debug``). A benchmark (``python bench/...``) runs for
minutes, so its block must follow a marker comment ``<!-- measured: <what, with its number> -->``, as every
command whose cost or output a page quotes does. Other programs' commands (pip, wandb sync) are not checked.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from lottery_style.cli import HELP_FLAGS, TOOLS, _parser
from lottery_style.core.extras import OPTION_EXTRAS, installed
from lottery_style.engine.compose import compose
from lottery_style.engine.validation import check_choices

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = (README, *sorted((ROOT / "docs").rglob("*.md")))
README_MAX_LINES = 220

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
MEASURED = re.compile(r"^\s*<!-- measured: (?P<what>.+?) -->\s*$")
INLINE_CODE = re.compile(r"`([^`]+)`")
ASSIGNMENT = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>.*)$", re.DOTALL)  # a shell variable, not an override
VARIABLE = re.compile(r"\$\{?(?P<name>[A-Za-z_]\w*)\}?")
PLACEHOLDER = re.compile(r"<[\w .-]+>")
SEPARATORS = ("&&", ";", "||")
HYDRA_FLAGS = {"-m": 0, "--multirun": 0, "--cfg": 1, "-c": 1, "--resolve": 0}  # flag: how many values follow


# ------------------------------------------------------------ reading the pages
@dataclass(frozen=True)
class Command:
    """One command a page shows: where, its words (placeholders filled in) and the measurement it sits under."""

    where: str
    words: tuple[str, ...]
    measured: str | None

    def after(self, program: str) -> list[str] | None:
        """The arguments after ``program`` (e.g. ``lottery-style`` behind ``/usr/bin/time -v``), or None."""
        return list(self.words[self.words.index(program) + 1 :]) if program in self.words else None


@dataclass(frozen=True)
class Block:
    where: str
    text: str
    measured: str | None


def shell_blocks(text: str, where: str) -> list[Block]:
    """The ``bash``/``sh`` fenced blocks of a page (indented ones inside lists too), with their measured marker."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening or not opening["lang"]:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = MEASURED.match(before)
        if opening["lang"] in ("bash", "sh", "shell"):
            body = "\n".join(line.removeprefix(opening["indent"]) for line in lines[index + 1 : end])
            blocks.append(Block(f"{where}:{index + 1}", body, marker["what"] if marker else None))
        index = end + 1
    return blocks


def without_blocks(text: str) -> str:
    """The page without its fenced blocks (their lines blanked, so inline spans keep their line numbers)."""
    out, inside = [], False
    for line in text.splitlines():
        fence = FENCE.match(line) or (inside and line.strip() == "```")
        out.append("" if inside or fence else line)
        if fence:
            inside = not inside
    return "\n".join(out)


def split_commands(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        if word in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def block_commands(block: Block, variables: dict[str, str] | None = None) -> list[Command]:
    """The commands of a shell block, as a shell would split them (comments dropped, variables expanded).

    ``variables`` are the page's shell variables so far: a reader runs a page's blocks in one shell, so a
    variable set in one block (``PAPER=...``) is used in later ones; the block's assignments are added to it.
    """
    variables = {} if variables is None else variables
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        assignment = ASSIGNMENT.match(words[0]) if len(words) == 1 else None
        if assignment:
            variables[assignment["name"]] = assignment["value"]
            continue
        line = VARIABLE.sub(lambda m: variables.get(m["name"], m[0]), line)
        words = shlex.split(PLACEHOLDER.sub("placeholder", line), comments=True)
        commands += [Command(block.where, tuple(words), block.measured) for words in split_commands(words)]
    return commands


def inline_commands(text: str, where: str) -> list[Command]:
    """Inline code spans that hold a ``lottery-style`` command with arguments: not the program's name alone, nor a
    tool's (``lottery-style report`` in prose names the tool)."""
    prose = without_blocks(text)
    found = []
    for match in INLINE_CODE.finditer(prose):
        line = prose.count("\n", 0, match.start()) + 1
        for words in split_commands(shlex.split(PLACEHOLDER.sub("placeholder", " ".join(match[1].split())))):
            command = Command(f"{where}:{line}", tuple(words), None)
            arguments = command.after("lottery-style")
            if arguments and not (len(arguments) == 1 and arguments[0] in TOOLS):
                found.append(command)
    return found


def page_commands() -> list[Command]:
    commands = []
    for page in PAGES:
        text, where = page.read_text(), str(page.relative_to(ROOT))
        variables: dict[str, str] = {}
        commands += [c for block in shell_blocks(text, where) for c in block_commands(block, variables)]
        commands += inline_commands(text, where)
    return commands


COMMANDS = page_commands()
LOTTERY_COMMANDS = [command for command in COMMANDS if command.after("lottery-style") is not None]


# ---------------------------------------------------- references to files
SCANNED_DIRS = ("lottery_style", "conf", "tests", "docs", "bench", "notebooks", ".ci")
SCANNED_FILES = ("README.md", "pyproject.toml", "mkdocs.yml")
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".json")
URL = re.compile(r"https?://\S+")
MARKDOWN_FILE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
REPOSITORY_PATH = re.compile(
    r"(?<![\w/.~$-])((?:lottery_style|conf|tests|bench|docs|notebooks|\.ci)/[\w./<>*{}\[\]-]*)"
)
TEMPLATE = re.compile(r"[<*{\[]")  # a path pattern (conf/model/<name>.yaml, signature-*.png): its folder must exist
MACHINE_PATH = re.compile(r"(?<![\w.~$-])/work/|(?<![\w/.-])shared/")
# Paths that exist only in a built wheel, where the repository's conf/ is installed as lottery_style/conf/.
WHEEL_ONLY = ("lottery_style/conf",)
# Files whose page names are relative to another folder than their own: mkdocs.yml's nav is relative to docs/.
PAGE_ROOTS = {"mkdocs.yml": "docs"}


def scanned_files() -> list[Path]:
    """The repository's own text: code, configs, tests, docs, benches, notebooks, CI and the top-level files (not
    this file, whose patterns and examples name what the check looks for)."""
    found = [ROOT / name for name in SCANNED_FILES]
    for folder in SCANNED_DIRS:
        found += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and "__pycache__" not in p.parts
                  and (p.suffix in TEXT_SUFFIXES or p.parent.name == ".ci")]  # fmt: skip
    return [path for path in found if path != Path(__file__).resolve()]


def missing_references(text: str, source: Path) -> list[str]:
    """Names of files or folders that ``text`` (the contents of ``source``) cites and the repository lacks: any
    ``*.md`` (relative to the repository or to ``source``), any path under one of the repository's folders, and
    any path on the machine outside the repository."""
    text = URL.sub("", text)
    missing = [match[0] for match in MACHINE_PATH.finditer(text)]
    for name in MARKDOWN_FILE.findall(text):
        bases = (ROOT, source.parent, ROOT / PAGE_ROOTS.get(source.name, ""))
        if not any((base / name).is_file() for base in bases):
            missing.append(name)
    for path in REPOSITORY_PATH.findall(text):
        path = path.rstrip(".,:;)]")
        template = TEMPLATE.search(path)
        if template:
            path = path[: template.start()].rpartition("/")[0] + "/"
        if not (ROOT / path).exists() and not path.startswith(WHEEL_ONLY):
            missing.append(path)
    return missing


def test_nothing_cites_a_file_outside_the_repository() -> None:
    files = scanned_files()
    assert len(files) > 150 and ROOT / "docs" / "architectures.md" in files and ROOT / ".ci" / "run" in files
    missing = [f"{p.relative_to(ROOT)}: {name}" for p in files for name in missing_references(p.read_text(), p)]
    assert missing == []


def test_the_reference_check_finds_missing_files_and_accepts_real_ones() -> None:
    source = ROOT / "lottery_style" / "models" / "sanet.py"
    # Made-up outside names, each assembled from pieces so that this file does not itself cite one.
    outside = "ROADMAP" + ".md"
    machine, beside = "/" + "work/", "shared" + "/"
    cited = (
        f"SANet ({outside} 2), the spec in {machine}{beside}, see {beside}{outside}, lottery_style/speed.py, "
        "docs/architectures.md, SANet; README.md; conf/model/<name>.yaml; docs/figures/signature-*.png; "
        "tests/test_vgg.py::test_x; lottery_style/conf/ in a wheel; https://github.com/a/b/blob/main/NOTES.md"
    )
    assert missing_references(cited, source) == [machine, beside, outside, beside + outside, "lottery_style/speed.py"]
    page = ROOT / "docs" / "api" / "tickets.md"
    assert missing_references("[a](../run-folder.md), [b](run-folder.md)", page) == ["run-folder.md"]


# ------------------------------------------------------------ checking a command
def hydra_arguments(arguments: list[str]) -> tuple[list[str], bool]:
    """The overrides of a training command line and whether it is a multirun (Hydra's own flags taken out)."""
    overrides, multirun, index = [], False, 0
    while index < len(arguments):
        word = arguments[index]
        if word in HYDRA_FLAGS:
            multirun = multirun or word in ("-m", "--multirun")
            index += 1 + HYDRA_FLAGS[word]
            continue
        overrides.append(word)
        index += 1
    return overrides, multirun


def launched_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The overrides of every job the command runs: one, or the grid Hydra's basic sweeper launches."""
    if not multirun:
        return [overrides]
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override() and o.input_line]
    params = compose(fixed, return_hydra_config=True).hydra.sweeper.params or {}
    grid = parser.parse_overrides([*(f"{key}={value}" for key, value in params.items()), *overrides])
    return [job for batch in BasicSweeper.split_arguments(grid, None) for job in batch]


def dry_run(arguments: list[str]) -> int:
    """Check a ``lottery-style`` command line as the console script would start it; the number of jobs composed
    (0 for a tool, whose arguments its parser accepted)."""
    if arguments and arguments[0] in TOOLS:
        _parser().parse_args(arguments)  # exits (SystemExit 2) on an unknown option or a missing argument
        return 0
    if arguments and arguments[0] in HELP_FLAGS:  # the console script's own help page (tests/test_cli_help.py)
        return 0
    overrides, multirun = hydra_arguments(arguments)
    check_choices(overrides)
    jobs = launched_jobs(overrides, multirun)
    for job in jobs:
        test_size = [] if any(word.startswith("debug=") for word in job) else ["debug=tiny"]
        compose([*job, *test_size])
    return len(jobs)


# ------------------------------------------------------------------- the tests
def test_the_readme_is_at_most_220_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: expected at most {README_MAX_LINES}"


def test_ci_runs_the_readme_test_command() -> None:
    """The README's test command ends in ``python -m pytest``, which .ci/run runs."""
    endings = [c.words[-3:] for b in shell_blocks(README.read_text(), "README.md") for c in block_commands(b)]
    assert ("python", "-m", "pytest") in endings
    assert "\npython -m pytest\n" in (ROOT / ".ci" / "run").read_text()


def test_the_pages_show_the_commands_this_test_checks() -> None:
    """The extraction finds the commands it should: a reader's commands on every kind of page, none lost."""
    wheres = {command.where.split(":")[0] for command in LOTTERY_COMMANDS}
    assert {"README.md", "docs/getting-started.md", "docs/paper.md", "docs/scaling.md", "docs/tools.md"} <= wheres
    assert len(LOTTERY_COMMANDS) >= 40
    tools = {arguments[0] for command in LOTTERY_COMMANDS if (arguments := command.after("lottery-style"))}
    assert set(TOOLS) <= tools


@pytest.mark.parametrize("command", LOTTERY_COMMANDS, ids=[c.where for c in LOTTERY_COMMANDS])
def test_every_lottery_style_command_is_composed_at_test_size(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = command.after("lottery-style")
    assert arguments is not None
    missing = [option for option, (module, _) in OPTION_EXTRAS.items() if option in arguments and not installed(module)]
    if missing:
        pytest.skip(f"{missing[0]} needs an extra that is not installed")
    # A SLURM command is composed, not submitted: a stand-in srun passes the check that refuses it off a cluster.
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    try:
        dry_run(arguments)
    except SystemExit as error:  # argparse's way of refusing a tool's arguments
        pytest.fail(f"{command.where}: {shlex.join(command.words)} is refused by its parser (exit {error.code})")


def test_every_benchmark_command_is_marked_as_measured_with_its_number() -> None:
    benches = [command for command in COMMANDS if any(word.startswith("bench/") for word in command.words)]
    assert len(benches) >= 8
    unmarked = [f"{c.where}: {shlex.join(c.words)}" for c in benches if c.measured is None]
    assert unmarked == []
    assert all((ROOT / next(w for w in c.words if w.startswith("bench/"))).is_file() for c in benches)


def test_every_measured_marker_states_a_number() -> None:
    markers = [(where, match["what"]) for page in PAGES for where, match in measured_markers(page)]
    assert len(markers) >= 10
    assert [f"{where}: {what}" for where, what in markers if not re.search(r"\d", what)] == []


def measured_markers(page: Path) -> list[tuple[str, re.Match[str]]]:
    where = str(page.relative_to(ROOT))
    return [
        (f"{where}:{i + 1}", m) for i, line in enumerate(page.read_text().splitlines()) if (m := MEASURED.match(line))
    ]


# --------------------------------------------------- the checker checks (unit)
PAGE = """Intro `lottery-style report` and `lottery-style -m experiment=signature`.

<!-- measured: 12 s -->
```bash
X="data.content_dir=/d/c \\
  seed=3"
lottery-style -m pruning.rate=0.1,0.2 $X  # a comment
python bench/step_time.py --steps 2 && lottery-style stylize --ticket outputs/r-<hash>/round_01 --content a --style b --out o
```

```text
lottery-style not-a-command=1
```

- a list item:

    ```bash
    lottery-style report runs/ --out report/
    ```
"""


def test_the_extraction_reads_blocks_continuations_variables_placeholders_and_inline_spans() -> None:
    blocks = shell_blocks(PAGE, "page")
    assert [(b.where, b.measured) for b in blocks] == [("page:4", "12 s"), ("page:17", None)]
    commands = [c.words for b in blocks for c in block_commands(b)]
    assert commands == [
        ("lottery-style", "-m", "pruning.rate=0.1,0.2", "data.content_dir=/d/c", "seed=3"),
        ("python", "bench/step_time.py", "--steps", "2"),
        ("lottery-style", "stylize", "--ticket", "outputs/r-placeholder/round_01", "--content", "a", "--style", "b",
         "--out", "o"),
        ("lottery-style", "report", "runs/", "--out", "report/"),
    ]  # fmt: skip
    assert [(c.where, c.words) for c in inline_commands(PAGE, "page")] == [
        ("page:1", ("lottery-style", "-m", "experiment=signature"))
    ]


def test_the_dry_run_expands_sweeps_and_refuses_what_the_console_script_refuses() -> None:
    assert dry_run(["-m", "pruning.rate=0.1,0.2", "seed=0,1"]) == 4
    assert dry_run(["-m", "experiment=signature"]) == 3  # the preset's seeds
    assert dry_run(["-m", "experiment=signature", "seed=5"]) == 1  # the command line replaces the preset's list
    assert dry_run(["report", "runs/", "--out", "report/"]) == 0
    with pytest.raises(Exception, match="model=vgg is invalid"):
        dry_run(["model=vgg"])
    with pytest.raises(Exception, match="pruning.rat"):
        dry_run(["pruning.rat=0.3"])  # a misspelled key fails composition
    with pytest.raises(SystemExit):
        dry_run(["export", "round_03", "--zip"])
