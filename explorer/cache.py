"""The build cache (``$NFX_CACHE``, else ``~/.cache/nfx``): what gcc built, kept by a content hash.

An entry is a folder ``<area>/<name>-<hex key>/`` (areas: ``bin`` NF programs, ``obj`` runtime
objects, ``codegen`` generated projects' programs) holding the built files and a manifest of their
sizes and SHA-256 hashes. It is built aside and renamed into place, so it appears whole; a lookup
checks it against its manifest, so an entry that is corrupt, half-written (by an older nfx or a
crash) or tampered with is removed and built again.

The cache is bounded by size: ``NFX_CACHE_SIZE`` (bytes, or with a K, M or G suffix; default 2G).
After each new entry the least recently used ones are removed until the cache fits, except those
used within the last minute (another nfx may be about to run them). ``nfx cache clean`` removes
every entry. Only entries (names ending in ``-<hex key>``) and nfx's own scratch folders are ever
removed, whatever else the folder holds.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

from explorer.errors import BuildError, ConfigError

AREAS = ("bin", "obj", "codegen")
MANIFEST = "nfx-entry.json"
DEFAULT_SIZE = 2 << 30
RECENT_SECONDS = 60.0  # entries used this recently are never evicted
SCRATCH_PREFIX = ".nfx-scratch-"
STALE_SCRATCH_SECONDS = 3600.0  # a scratch folder this old was left by a killed nfx
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def root() -> Path:
    """``$NFX_CACHE``, else ``~/.cache/nfx`` (absolute)."""
    return Path(os.environ.get("NFX_CACHE") or Path.home() / ".cache" / "nfx").absolute()


def size_limit() -> int:
    """``NFX_CACHE_SIZE`` in bytes (default 2 GiB)."""
    text = os.environ.get("NFX_CACHE_SIZE", "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_SIZE
    unit = text[-1] if text[-1] in _UNITS and not text[-1].isdigit() else ""
    try:
        value = float(text[:-1] if unit else text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"NFX_CACHE_SIZE={os.environ['NFX_CACHE_SIZE']!r}: expected a size such as 500M or 2G")
    return int(value * _UNITS[unit])


def _is_entry_name(name: str) -> bool:
    """``<name>-<20 to 64 hex digits>``, optionally ``.o`` (how nfx names entries, old layouts included)."""
    stem = name.removesuffix(".o")
    key = stem.rpartition("-")[2]
    return "-" in stem and 20 <= len(key) <= 64 and all(c in "0123456789abcdef" for c in key)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _valid(folder: Path) -> bool:
    """Whether ``folder`` holds exactly what its manifest lists, byte for byte."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        for name, (size, sha) in files.items():
            path = folder / name
            if path.is_symlink() or not path.is_file() or path.stat().st_size != size or _digest(path) != sha:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def lookup(area: str, name: str) -> Optional[Path]:
    """The entry folder ``area/name`` if it is whole (and mark it used); a broken one is removed."""
    folder = root() / area / name
    if not folder.exists() and not folder.is_symlink():
        return None
    if folder.is_symlink() or not folder.is_dir() or not _valid(folder):
        _remove(folder)
        return None
    with contextlib.suppress(OSError):
        os.utime(folder / MANIFEST)  # the LRU clock
    return folder


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A private folder inside the cache (so that publishing is a rename), removed afterwards."""
    base = root()
    size_limit()  # a bad NFX_CACHE_SIZE is refused before the build, not after
    if base.exists() and not base.is_dir():
        raise BuildError(f"the build cache {base} is not a folder (set NFX_CACHE to a folder)")
    try:
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=base))
    except OSError as error:
        raise BuildError(f"cannot use the build cache {base}: {error.strerror or error}") from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(area: str, name: str, files: Mapping[str, Path]) -> Path:
    """Move ``files`` (``{name in the entry: built file}``, on the cache's file system) into the new
    entry ``area/name`` and return it; if another nfx published it first, theirs is kept."""
    base = root()
    final = base / area / name
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=base))
        listed = {}
        for entry_name, built in sorted(files.items()):
            os.replace(built, folder / entry_name)
            listed[entry_name] = [(folder / entry_name).stat().st_size, _digest(folder / entry_name)]
        (folder / MANIFEST).write_text(json.dumps({"files": listed}, sort_keys=True) + "\n")
        os.chmod(folder, 0o755)
        try:
            os.rename(folder, final)
        except OSError:  # there already: built meanwhile by another nfx, or left broken
            if lookup(area, name) is None:
                os.rename(folder, final)
            else:
                shutil.rmtree(folder, ignore_errors=True)
    except OSError as error:
        raise BuildError(f"cannot write to the build cache {base}: {error.strerror or error}") from None
    evict()
    return final


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    used: float  # when last used (seconds since the epoch)


def entries() -> list[Entry]:
    """Every entry of the cache, least recently used first."""
    found = []
    for area in AREAS:
        folder = root() / area
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not _is_entry_name(path.name) or path.is_symlink():
                continue
            try:
                if path.is_dir():
                    manifest = path / MANIFEST
                    used = manifest.stat().st_mtime if manifest.exists() else path.stat().st_mtime
                    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file() and not f.is_symlink())
                else:
                    used, size = path.stat().st_mtime, path.stat().st_size
            except OSError:
                continue
            found.append(Entry(path, size, used))
    return sorted(found, key=lambda e: (e.used, str(e.path)))


def _stale_scratch() -> list[Path]:
    base = root()
    if not base.is_dir():
        return []
    now = time.time()
    return [p for p in base.iterdir() if p.name.startswith(SCRATCH_PREFIX) and p.is_dir() and not p.is_symlink()
            and now - p.stat().st_mtime > STALE_SCRATCH_SECONDS]


def evict(limit: Optional[int] = None) -> list[Path]:
    """Remove least recently used entries until the cache fits ``limit`` (default
    ``size_limit()``), sparing those used within RECENT_SECONDS; returns what was removed."""
    limit = size_limit() if limit is None else limit
    for folder in _stale_scratch():
        shutil.rmtree(folder, ignore_errors=True)
    found = entries()
    total = sum(e.size for e in found)
    removed = []
    now = time.time()
    for entry in found:
        if total <= limit:
            break
        if now - entry.used < RECENT_SECONDS:
            continue
        _remove(entry.path)
        total -= entry.size
        removed.append(entry.path)
    return removed


def clean() -> tuple[int, int]:
    """Remove every entry (and scratch folders left by a killed nfx): (entries, bytes) removed."""
    found = entries()
    for entry in found:
        _remove(entry.path)
    for folder in _stale_scratch():
        shutil.rmtree(folder, ignore_errors=True)
    return len(found), sum(e.size for e in found)
