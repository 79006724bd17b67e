"""``python -m likeloop_cli`` is the ``likeloop`` command."""

import sys

from .main import main

sys.exit(main())
