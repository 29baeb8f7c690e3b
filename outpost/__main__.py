"""`python -m outpost`: the same as the `outpost` command."""

import sys

from outpost.cli import main

sys.exit(main())
