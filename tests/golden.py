"""The one golden-file comparison of the tests: a mismatch fails with a unified diff of the two texts;
``NFX_UPDATE_GOLDEN=1`` rewrites the golden files instead (then review the diff)."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Optional

import pytest


def compare(actual: str, path: Path, update: Optional[bool] = None) -> None:
    """Fail unless ``path`` holds ``actual``; with ``update`` (default: NFX_UPDATE_GOLDEN=1) write it."""
    if update if update is not None else os.environ.get("NFX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != actual:
            path.write_text(actual)
        return
    if not path.exists():
        pytest.fail(f"{path.name} is missing; create it with NFX_UPDATE_GOLDEN=1", pytrace=False)
    expected = path.read_text()
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                    fromfile=f"{path.name} (golden)", tofile="now")
        text = "".join(list(diff)[:300])
        pytest.fail(f"{path.name} differs from the golden file (NFX_UPDATE_GOLDEN=1 to accept):\n{text}",
                    pytrace=False)
