"""``python -m t2f`` runs the command-line interface."""

from t2f.cli import main

raise SystemExit(main())
