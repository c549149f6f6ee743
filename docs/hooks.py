"""MkDocs hook: the docstrings' Sphinx roles (``:class:`X```, ``:meth:`X.y```) rendered as plain code.

The API pages render the package's docstrings as Markdown, which keeps a role's
name in front of its code span (":meth:`X.y`"); the reader needs the code only.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|obj|exc|ref):(?=<code>)")


def on_page_content(html: str, **_: Any) -> str:
    return ROLE.sub("", html)
