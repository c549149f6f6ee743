"""The console script shows itself: `--help` names every tool and config group; a mistyped tool is one line."""

from __future__ import annotations

import argparse
import difflib

import pytest

from lottery_style.cli import TOOLS, _parser, main, unknown_word
from lottery_style.core.conf_dir import CONF_DIR


def parser_tools() -> list[str]:
    """The subcommands argparse really has (not the TOOLS tuple the help page is written from)."""
    (subparsers,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(subparsers.choices)


def test_help_names_every_tool_with_one_line_and_every_config_group(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert sorted(parser_tools()) == sorted(TOOLS) and {"stylize", "export", "report", "prepare-data", "options"} <= set(TOOLS)
    for tool in parser_tools():
        (line,) = [line for line in lines if line.split()[:1] == [tool]]
        assert len(line.split()) > 3, line  # the tool and a line saying what it does
    for group in (p for p in CONF_DIR.iterdir() if p.is_dir()):
        assert any(line.split()[:1] == [group.name] for line in lines), group.name
    assert "lottery-style TOOL --help" in out and "lottery-style options GROUP" in out
    assert "powered by Hydra" not in out
    assert main(["-h"]) == 0 and capsys.readouterr().out == out


@pytest.mark.parametrize("word", ["evalute", "reprot", "stylise", "export-ticket"])
def test_a_first_word_that_is_neither_tool_nor_override_is_one_line_with_the_closest_tool(word: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([word, "debug=tiny"])
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message
    closest = difflib.get_close_matches(word, TOOLS, n=1, cutoff=0.0)[0]
    assert message.startswith(f"lottery-style: {word!r} is neither a tool nor an override: did you mean {closest!r}?")
    assert capsys.readouterr().err == ""  # nothing from Hydra


def test_the_closest_tool_is_the_one_a_typo_means() -> None:
    assert "did you mean 'report'?" in str(unknown_word("reprot"))
    assert "did you mean 'stylize'?" in str(unknown_word("stylise"))


@pytest.mark.parametrize("word", ["debug=tiny", "+extra=1", "~logger", "-m", "--cfg", "--hydra-help", "report"])
def test_overrides_flags_and_tools_are_not_unknown_words(word: str) -> None:
    assert unknown_word(word) is None
