"""A generated project on disk: ``write_project`` puts a plan's files (``printer.render``) in a
folder the way git and coreutils' ``install`` do, and only ever replaces or removes what nfx wrote.

* A new folder is filled beside its final name and renamed into place (``outputs.staged_folder``):
  it appears whole or not at all.
* Every file goes through ``explorer.outputs`` (a temporary file, then a rename); a symlink, device
  or folder where a project file or the marker belongs is refused, and nothing is written.
* The marker ``.nfx-generated`` records the SHA-256 of every file nfx wrote. A file is replaced or
  removed only while its bytes still hash to what the marker records: a file the user edited, and
  one nfx never wrote (the input NF under ``-o .``, a user's own Makefile), is never clobbered.
  Generation then refuses, or with ``force`` writes the new version beside it as ``NAME.new`` and
  says so.
* While an existing folder is updated its marker says ``"complete": false`` and accepts both the
  old and the new bytes of every file being replaced: a run cut short (a full disk) leaves a folder
  that the build refuses and that the next ``generate`` finishes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from explorer.codegen.planning import ParallelPlan
from explorer.codegen.printer import render, rendered
from explorer.errors import GenerateError, OutputError
from explorer.outputs import check_destination, digest, os_words, refuse_system_folder, staged_folder, write_atomic

__all__ = ["MARKER", "GeneratedProject", "is_complete", "marker_summary", "read_marker", "render", "write_project"]

MARKER = ".nfx-generated"
NEW_SUFFIX = ".new"  # where the new version of a file nfx must not overwrite goes


@dataclass(frozen=True)
class GeneratedProject:
    """A project on disk: its folder, its plan, the files it consists of and what this run did."""

    folder: Path
    plan: ParallelPlan
    files: tuple[str, ...]  # every project file, by name
    changed: tuple[str, ...]  # written by this run (new bytes), including NAME.new copies
    kept: tuple[str, ...] = ()  # files nfx did not overwrite (edited, or not nfx's): see NAME.new
    removed: tuple[str, ...] = ()  # files an earlier generation wrote that this one does not
    diff: str = ""  # the NF's changes for the strategy: a unified diff against its source


def _valid_name(name: object) -> bool:
    """A relative path inside the folder, of plain names (a forged marker must not reach anything
    else): a project file, or one of the NF's headers in a subfolder."""
    return (isinstance(name, str) and name != MARKER and "\0" not in name
            and all(part not in ("", ".", "..") for part in name.split("/")))


def _valid_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _refuse_odd(path: Path) -> None:
    """Only a regular file or nothing may sit where nfx writes (never a symlink)."""
    check_destination(path)


def _folders(out: Path, name: str) -> list[Path]:
    """The folders between ``out`` and the file ``name`` (none for a file at the top)."""
    parts = name.split("/")[:-1]
    return [out.joinpath(*parts[:k]) for k in range(1, len(parts) + 1)]


def _refuse_odd_folders(out: Path, name: str) -> None:
    """Every folder between ``out`` and a file in a subfolder is a real folder or nothing yet: nfx
    never writes through a symlink, nor where a file stands in for a folder."""
    for folder in _folders(out, name):
        if folder.is_symlink():
            raise OutputError(f"refusing to write {out / name}: {folder} is a symbolic link (nfx never writes "
                              "through one)")
        if folder.exists() and not folder.is_dir():
            raise GenerateError(f"cannot write {out / name}: {folder} is not a folder")


def _plain_folders(out: Path, name: str) -> bool:
    """Whether every folder between ``out`` and ``name`` is a real folder (not a symlink)."""
    return all(folder.is_dir() and not folder.is_symlink() for folder in _folders(out, name))


def _remove_empty_folders(out: Path, name: str) -> None:
    """After removing a file in a subfolder: its folders, when nothing else is left in them."""
    folder = (out / name).parent
    while folder != out:
        try:
            folder.rmdir()
        except OSError:  # not empty, or not ours to judge
            return
        folder = folder.parent


def _hash(path: Path) -> Optional[str]:
    """The digest of a regular file's bytes, None when there is no file (symlinks are refused)."""
    _refuse_odd(path)
    if not path.exists():
        return None
    try:
        return digest(path.read_bytes())
    except OSError as error:
        raise OutputError(f"cannot read {path}: {os_words(error)}") from None


def read_marker(folder: str | Path) -> Optional[dict[str, frozenset[str]]]:
    """What an earlier ``generate`` recorded in ``folder``: file name -> the digests of the bytes it
    wrote there. None when there is no marker (or it is not one of ours); a marker without digests
    (hand-written, or from an older nfx) vouches for no file. A marker that is a symlink or not a
    regular file is refused (OutputError)."""
    path = Path(folder) / MARKER
    _refuse_odd(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, list):
        return {name: frozenset() for name in files if _valid_name(name)}
    if not isinstance(files, dict):
        return None
    return {name: frozenset(h for h in hashes if _valid_hash(h))
            for name, hashes in files.items() if _valid_name(name) and isinstance(hashes, list)}


def marker_summary(folder: str | Path) -> Optional[dict[str, Any]]:
    """``{"nf", "strategy", "edited"}`` of the project an earlier ``generate`` wrote into ``folder``;
    None when nfx wrote none there (no marker, or one that is not ours). ``edited`` names the files
    changed since nfx wrote them, which ``write_project`` keeps unless forced: a caller asks first."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nf"), str):
        return None
    return {"nf": data["nf"], "strategy": str(data.get("strategy", "")), "edited": _edited(Path(folder))}


def _edited(folder: Path) -> list[str]:
    """The project's files in ``folder`` that hold bytes nfx did not write there, sorted: recorded
    ones changed since, and those an earlier forced write kept (it recorded NAME.new beside them)."""
    recorded = read_marker(folder) or {}
    names = set(recorded) | {n[:-len(NEW_SUFFIX)] for n in recorded if n.endswith(NEW_SUFFIX)}
    edited = []
    for name in sorted(names):
        path = folder / name
        try:
            if not path.is_symlink() and path.is_file() and digest(path.read_bytes()) not in recorded.get(name, ()):
                edited.append(name)
        except OSError:
            edited.append(name)  # unreadable: nfx could not tell it is its own either
    return edited


def is_complete(folder: str | Path) -> bool:
    """False while (or after) an update of ``folder`` was cut short: its files may be a mix."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return True  # not a folder nfx keeps track of
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(data, dict) and data.get("complete") is False)


def _marker(plan: ParallelPlan, hashes: dict[str, frozenset[str]], complete: bool) -> str:
    return json.dumps({"generated_by": "nfx generate", "nf": plan.nf, "strategy": plan.strategy,
                       "complete": complete, "files": {name: sorted(h) for name, h in sorted(hashes.items())}},
                      indent=1, sort_keys=True) + "\n"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _new_folder(plan: ParallelPlan, out: Path, files: dict[str, bytes], diff: str) -> GeneratedProject:
    with staged_folder(out) as staging:
        for name, data in files.items():
            write_atomic(staging / name, data)
        write_atomic(staging / MARKER, _marker(plan, {n: frozenset({digest(d)}) for n, d in files.items()}, True))
    return GeneratedProject(out, plan, tuple(files), tuple(files), diff=diff)


def write_project(plan: ParallelPlan, out: str | Path, force: bool = False) -> GeneratedProject:
    """Write the project into ``out``: a new folder appears whole; in an existing one only files
    whose bytes change are written. Refuses (GenerateError) a non-empty folder that nfx did not
    create unless ``force``, and a file changed since nfx wrote it (or never written by nfx) unless
    ``force``, which then writes the new version beside it as ``NAME.new``. A system folder, and a
    symlink where a file belongs, are refused (OutputError) even with ``force``."""
    out = Path(out)
    refuse_system_folder(out)
    result = rendered(plan)
    files = result.files
    if not out.exists() and not out.is_symlink():
        return _new_folder(plan, out, files, result.diff)
    if not out.is_dir():
        raise GenerateError(f"{out} exists and is not a folder")
    recorded = read_marker(out)
    if recorded is None:
        try:
            empty = not any(out.iterdir())
        except OSError as error:
            raise OutputError(f"cannot read the folder {out}: {os_words(error)}") from None
        if not empty and not force:
            raise GenerateError(f"{out} is not empty and nfx did not create it; choose an empty folder or use "
                                "--force (files nfx did not write are kept; new versions go beside them as NAME.new)")
        recorded = {}
    source = Path(plan.source)
    for name in files:
        _refuse_odd_folders(out, name)

    writes: dict[str, bytes] = {}  # name -> bytes to write
    final: dict[str, str] = {}  # name -> digest, for every file that will hold bytes nfx wrote
    kept: list[str] = []
    for name, data in files.items():
        target, wanted = out / name, digest(data)
        present = _hash(target)
        if present == wanted:
            final[name] = wanted
        elif present is None or (present in recorded.get(name, ()) and not _same_file(target, source)):
            writes[name], final[name] = data, wanted
        else:
            kept.append(name)
            beside = name + NEW_SUFFIX
            there = _hash(out / beside)
            if there not in (None, wanted) and there not in recorded.get(beside, ()):
                raise GenerateError(f"{out / beside} exists and nfx did not write it; nfx needs that name for the "
                                    f"new version of {name}: move it away")
            if there != wanted:
                writes[beside] = data
            final[beside] = wanted
    if kept and not force:
        them = "it" if len(kept) == 1 else "them"
        raise GenerateError(f"{out}: {', '.join(kept)} changed since nfx wrote {them}, or nfx did not write {them}; "
                            f"nfx never overwrites such files: move {them} away, or use --force to write the new "
                            f"version{'s' if len(kept) > 1 else ''} beside {them} as "
                            f"{', '.join(k + NEW_SUFFIX for k in kept)}")
    removed = []
    for name in sorted(set(recorded) - set(final)):
        path = out / name
        if (_plain_folders(out, name) and path.is_file() and not path.is_symlink() and _hash(path) in recorded[name]
                and not _same_file(path, source)):
            removed.append(name)

    target_marker = _marker(plan, {n: frozenset({h}) for n, h in final.items()}, True)
    try:
        current_marker = (out / MARKER).read_text() if (out / MARKER).is_file() else None
    except OSError:
        current_marker = None
    if writes or removed:
        # Until the last write the folder may hold old and new bytes: the marker vouches for both.
        during = {n: recorded.get(n, frozenset()) | {h} for n, h in final.items()}
        during.update({n: recorded[n] for n in removed})
        write_atomic(out / MARKER, _marker(plan, during, False))
        for name, data in writes.items():
            write_atomic(out / name, data)
        for name in removed:
            try:
                (out / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise OutputError(f"cannot remove {out / name}: {os_words(error)}") from None
            _remove_empty_folders(out, name)
    if writes or removed or current_marker != target_marker:
        write_atomic(out / MARKER, target_marker)
    return GeneratedProject(out, plan, tuple(files), tuple(writes), tuple(kept), tuple(removed), result.diff)
