"""File names made from series labels, which hold spaces, commas and ``=`` (``imp, pruning.rate=0.1``)."""

from __future__ import annotations

import re

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(*words: str) -> str:
    """``words`` joined by ``_`` with only letters, digits, ``.``, ``-`` and ``_``: a name a shell, a URL and
    every file system take as it is (``"imp, pruning.rate=0.1"`` -> ``imp_pruning.rate-0.1``)."""
    return "_".join(UNSAFE.sub("_", word.replace("=", "-")).strip("_") for word in words)
