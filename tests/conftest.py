"""Shared test set-up: tests import each other's small helpers from this folder."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
