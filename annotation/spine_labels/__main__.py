"""``python -m spine_labels``: see cli.py."""

from .cli import main

raise SystemExit(main())
