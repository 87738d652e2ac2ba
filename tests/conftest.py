"""Shared test set-up: tests import each other's small helpers from this folder, and SIGTERM (what
``timeout`` and CI send) unwinds a test run like Ctrl-C, so that every ``finally`` and ``with``
block runs: temporary folders, EAL runtime folders and child processes go with it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from explorer.processes import handle_termination  # noqa: E402


def pytest_configure(config):
    handle_termination()
