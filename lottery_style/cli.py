"""The ``lottery-style`` console script: training by default, tools as subcommands."""

from __future__ import annotations

import sys


def main() -> None:
    from lottery_style.train import main as train_main

    train_main()


if __name__ == "__main__":
    main()
