import sys

from lottery_style.cli import main

sys.exit(main())
