"""`python -m engine.export RUN_ID --out DIR [...]` (see engine.export.cli.main)."""

import sys

from engine.export.cli import main

sys.exit(main())
