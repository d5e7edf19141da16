"""`python -m console` is `ztui`."""

import sys

from .cli import main

sys.exit(main())
