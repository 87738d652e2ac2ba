"""A folder of pcaps that nfx writes (``nfx run --out``, ``nfx traffic --out``), never losing
anything that is not its own.

* A new folder is filled aside and renamed into place (``explorer.outputs.staged_folder``): it
  appears whole or not at all, so a full disk leaves nothing that looks finished.
* An existing folder (a real one, never a symlink) keeps what nfx did not write. ``MARKER`` lists
  the files nfx wrote there with their SHA-256; only those, unchanged since, are replaced (or
  removed when the new set is smaller: only files whose hash matches are ever removed, so a forged
  marker removes nothing). Every new file is written to a temporary file first and
  they are all renamed in at the end, so a failure leaves the old files as they were.
* Failures keep the OS's words ("No space left on device"); ``check_folder`` refuses a bad
  destination before any work.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from explorer.errors import OutputError
from explorer.outputs import (PathLike, atomic_file, check_destination, check_writable, file_digest,
                              refuse_system_folder, same_file, staged_folder)

MARKER = ".nfx-pcaps.json"
LEGACY_MARKERS = (".nfx-run.json",)  # nfx run's marker before there was one for every pcap folder
Pcap = tuple[np.ndarray, Sequence[bytes]]  # (timestamps in ns, frames)


def check_folder(out: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder nfx cannot or must not write: a symlink, a file,
    a system folder, or a place where no folder can be created."""
    refuse_system_folder(out)
    if out.is_symlink():
        raise OutputError(f"{option} {out}: is a symbolic link (nfx never writes through one); name the folder itself")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{option} {out}: exists and is not a folder")
    check_writable(out if out.exists() else out.parent, option, out)


def _ours(out: Path) -> dict[str, str | None]:
    """The files an earlier nfx wrote in ``out``: name -> SHA-256 (None when a legacy marker did not
    record it)."""
    found: dict[str, str | None] = {}
    for marker in (*LEGACY_MARKERS, MARKER):
        path = out / marker
        if path.is_symlink() or not path.is_file():
            continue
        try:
            listed = json.loads(path.read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            continue
        pairs = listed.items() if isinstance(listed, dict) else ((name, None) for name in listed)
        for name, sha in pairs:
            if isinstance(name, str) and name and "/" not in name and name not in (".", ".."):
                found[name] = sha if isinstance(sha, str) else None
    return found


def _check_names(out: Path, names: Sequence[str], ours: Mapping[str, str | None]) -> None:
    for name in [*names, MARKER]:
        target = out / name
        if not (target.exists() or target.is_symlink()):
            continue
        check_destination(target)  # never through a symlink, never onto a device or a folder
        if name == MARKER:
            continue
        if name not in ours:
            raise OutputError(f"refusing to overwrite {target}: nfx did not write it "
                              "(remove it or choose another --out)")
        if ours[name] is not None and file_digest(target) != ours[name]:
            raise OutputError(f"refusing to overwrite {target}: it changed since nfx wrote it "
                              "(remove it or choose another --out)")


def write_pcaps(out: Path, pcaps: Mapping[str, Pcap], inputs: Sequence[PathLike] = ()) -> dict[str, Path]:
    """Write ``{name: (timestamps, frames)}`` as pcaps in ``out``, with the marker; returns the paths.
    None may be one of ``inputs`` (the command's own NF and captures), even one nfx wrote."""
    from explorer.traffic.pcap import write_pcap_to

    check_folder(out)
    for name in pcaps:
        for given in inputs:
            if given and (out / name).exists() and same_file(out / name, Path(given)):
                raise OutputError(f"refusing to write {out / name}: it is one of this command's inputs "
                                  f"({given}); choose another --out")
    hashes: dict[str, str] = {}

    def fill(folder: Path, stack: contextlib.ExitStack) -> None:
        marker = stack.enter_context(atomic_file(folder / MARKER))  # entered first: renamed in last
        for name, (stamps, frames) in sorted(pcaps.items()):
            hashing = _Hashing(stack.enter_context(atomic_file(folder / name)))
            write_pcap_to(hashing, str(out / name), stamps, frames)
            hashes[name] = hashing.hexdigest()
        marker.write((json.dumps({"written_by": "nfx", "files": hashes}, indent=1, sort_keys=True) + "\n").encode())

    if not out.exists():
        with staged_folder(out) as staging, contextlib.ExitStack() as stack:
            fill(staging, stack)
    else:
        ours = _ours(out)
        _check_names(out, list(pcaps), ours)
        with contextlib.ExitStack() as stack:  # every temporary file written before any is renamed in
            fill(out, stack)
        for name, sha in sorted(ours.items()):  # files of an earlier, larger set, if unchanged since
            if name not in pcaps and sha is not None and file_digest(out / name) == sha:
                (out / name).unlink()
        for legacy in LEGACY_MARKERS:
            if (out / legacy).is_file() and not (out / legacy).is_symlink():
                (out / legacy).unlink()
    return {name: out / name for name in pcaps}


class _Hashing:
    """A binary handle that also hashes what goes through it: the marker's hashes, those of
    ``outputs.file_digest``."""

    def __init__(self, handle):
        self.handle = handle
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.handle.write(data)

    def hexdigest(self) -> str:
        return self.sha.hexdigest()
