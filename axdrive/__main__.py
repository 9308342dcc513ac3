"""``python -m axdrive`` is the same as the ``axdrive`` command."""

from .cli import main

raise SystemExit(main())
