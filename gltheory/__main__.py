"""``python -m gltheory``: the same as the ``gltheory`` console script."""

import sys

from .cli import main

sys.exit(main())
