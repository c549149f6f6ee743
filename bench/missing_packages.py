"""The packages a GPU machine image lacks for this project, as ``name==version`` lines for ``pip download``.

Usage: python bench/missing_packages.py [--image bench/gpu_image_packages.txt] [--python-version 3.12] [NAME ...]
       python bench/missing_packages.py --check

Why: a GPU machine without a package registry can install only what is carried to
it as wheels (bench/gpu_check.sh), and the carried folder should hold what is
missing and nothing else. This walks the project's requirements in the Python
that runs it (``importlib.metadata``: the installed ``lottery-style`` and, below
it, each requirement's own), with the environment markers of CPython
``--python-version`` on Linux x86-64 and without extras, and prints every
package the image's list does not name, at the version installed here: the
versions this checkout's tests pass with. ``NAME`` adds a package the image holds
in a version too old (bench/gpu_check.sh names unmet versions).
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "lottery-style"


def target_environment(python_version: str) -> dict[str, str]:
    """Marker values of CPython ``python_version`` on Linux x86-64 (the GPU machine), whatever runs this."""
    return {
        "python_version": python_version, "python_full_version": f"{python_version}.0", "sys_platform": "linux",
        "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
        "platform_python_implementation": "CPython", "extra": "",
    }  # fmt: skip


def missing(root: str, present: set[str], environment: dict[str, str]) -> dict[str, str]:
    """What ``root`` needs, ``root`` included, that ``present`` lacks: canonical name -> the version installed here."""
    found: dict[str, str] = {}
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found or name in present:
            continue
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            sys.exit(f"{name} is needed by {PROJECT} but not installed here: install the project (pip install -e .)")
        for line in requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pending.append(requirement.name)
    return found


def unmet(root: str) -> list[str]:
    """Every requirement below ``root``, followed through this environment, that is missing or too old/new."""
    problems: list[str] = []
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                installed = version(requirement.name)
            except PackageNotFoundError:
                problems.append(f"{requirement.name} is not installed ({name} needs {requirement})")
                continue
            if not requirement.specifier.contains(installed, prereleases=True):
                problems.append(f"{requirement.name} {installed} is installed, {name} needs {requirement}")
            pending.append(requirement.name)
    return problems


def image_packages(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(line) for line in lines if line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=Path(__file__).with_name("gpu_image_packages.txt"))
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python, major.minor")
    parser.add_argument("names", nargs="*", help="also carry these, though the image has them")
    parser.add_argument("--check", action="store_true", help="check this environment instead: exit 1 if unmet")
    args = parser.parse_args()
    if args.check:
        try:
            problems = unmet(PROJECT)
        except PackageNotFoundError:
            sys.exit(f"{PROJECT} is not installed here: install its wheel (bench/gpu_check.sh does) or the checkout")
        print("\n".join(problems) or f"every requirement of {PROJECT} is met ({version(PROJECT)})")
        sys.exit(1 if problems else 0)
    environment = target_environment(args.python_version)
    extra = {canonicalize_name(name) for name in args.names}
    needed = missing(PROJECT, set(), environment)
    unknown = sorted(extra - set(needed))
    if unknown:
        parser.error(f"{unknown} are not among {PROJECT}'s requirements: expected names from {sorted(needed)}")
    carried = missing(PROJECT, image_packages(args.image) - extra, environment)
    for name in sorted(set(carried) - {PROJECT}):
        print(f"{name}=={carried[name]}")


if __name__ == "__main__":
    main()
