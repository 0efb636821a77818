"""``python -m langchain_fermi`` runs the ``fermi`` command line."""

from langchain_fermi.cli import main

raise SystemExit(main())
