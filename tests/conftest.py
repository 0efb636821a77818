"""Shared test set-up: keep every default store location inside a temporary folder."""

from __future__ import annotations

import os
import tempfile

# A Fermi store opened without an explicit path lands under $XDG_DATA_HOME; point that at a
# throw-away folder so that no test ever writes to the real ~/.local/share.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="fermi-tests-xdg-")
