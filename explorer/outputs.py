"""Writing what nfx produces, the way git and coreutils' ``install`` do: into a temporary file in the
destination's own folder, then ``os.replace`` it. A reader never sees half a file, a failure leaves
the old file as it was, and nothing is ever written through a symlink or onto a device, a FIFO or a
folder that happens to sit where a file should go.

Every command that writes a file (generate, traffic, run, bench, check's verdict log) goes through
``atomic_file`` or ``write_atomic``; ``staged_folder`` makes a whole new folder appear at once; a
file the user names (``--dot``, ``--csv``, ``--plot``, ``--verdicts``, bench's files) through
``write_output``, which replaces only what nfx itself wrote there.
Failures raise ``OutputError`` with the OS's own words ("No space left on device").
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator, Union

from explorer.errors import OutputError

PathLike = Union[str, os.PathLike]
# Folders no --out may name, even with --force: the file system's own.
SYSTEM_FOLDERS = frozenset(Path(p) for p in (
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin",
    "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/share", "/var",
    "/var/run", "/var/tmp", "/home"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def os_words(error: OSError) -> str:
    """What the OS said, e.g. "No space left on device"."""
    return error.strerror or str(error)


def check_destination(path: PathLike) -> Path:
    """``path`` as a Path, if nfx may put a regular file there: nothing there yet, or a regular file
    (never a symlink, even one to a regular file, nor a folder, device or FIFO)."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"refusing to write {path}: it is a symbolic link (nfx never writes through one)")
    if path.exists() and not path.is_file():
        raise OutputError(f"refusing to write {path}: it exists and is not a regular file")
    return path


def refuse_system_folder(folder: PathLike) -> Path:
    """``folder``, unless it is the root or another system folder (refused even with --force)."""
    folder = Path(folder)
    resolved = Path(os.path.realpath(folder))
    if resolved in SYSTEM_FOLDERS or folder.absolute() in SYSTEM_FOLDERS:
        raise OutputError(f"refusing to write into {folder}: it is a system folder; name a folder of your own")
    return folder


def check_writable(folder: Path, option: str, target: Path) -> None:
    """That a file can be created in ``folder`` or, when it does not exist yet, in its nearest
    existing parent (tried with a temporary file, removed at once)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link where a folder should be
            raise OutputError(f"{option} {target}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {target}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nfx-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"{option} {target}: cannot write in {existing}: {os_words(error)}") from None


def _aside(target: Path, verb: str) -> Path:
    """A fresh name beside ``target`` for its temporary, ``target``'s folder made. The caller names
    the temporary before making it, so that Ctrl-C or SIGTERM landing just after it is made still
    finds it to remove (mkstemp and mkdtemp can be interrupted between making it and returning its
    name)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise OutputError(f"cannot {verb} {target}: {target.parent} is not a folder") from None
    except OSError as error:
        raise OutputError(f"cannot {verb} {target}: {os_words(error)}") from None
    return target.parent / f".{target.name}.{secrets.token_hex(8)}.part"


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """A handle on a temporary file beside ``path``; when the block ends without an error the file
    replaces ``path`` (created with the usual permissions), otherwise it is removed."""
    path = check_destination(path)
    temp = _aside(path, "write")
    try:
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as error:  # an existing name is not ours: never removed
            temp = None
            raise OutputError(f"cannot write {path}: {os_words(error)}") from None
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
        os.chmod(temp, 0o666 & ~_umask())  # made private (0o600) while it fills
        check_destination(path)  # nothing was planted there meanwhile
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {os_words(error)}") from None
    except BaseException:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: PathLike, data: Union[bytes, str]) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` through ``atomic_file``."""
    with atomic_file(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def digest(data: bytes) -> str:
    """The content hash recorded for files nfx wrote (so it only ever removes or replaces its own)."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: PathLike) -> str | None:
    """``digest`` of a regular file's bytes, None when it is missing, a symlink or not a regular file."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return digest(path.read_bytes())
    except OSError:
        return None


@contextlib.contextmanager
def staged_folder(final: PathLike) -> Iterator[Path]:
    """A new private folder beside ``final`` to fill; when the block ends without an error it is
    renamed to ``final`` (which must not exist yet), so the folder appears complete or not at all."""
    final = Path(final)
    if final.exists() or final.is_symlink():
        raise OutputError(f"cannot create {final}: it already exists")
    staging = _aside(final, "create")
    try:
        try:
            staging.mkdir(mode=0o700)
        except FileExistsError:  # not ours (16 random hex digits): never removed
            staging = None
            raise OutputError(f"cannot create {final}: a folder of the name nfx stages it under exists") from None
        except OSError as error:
            staging = None
            raise OutputError(f"cannot create {final}: {os_words(error)}") from None
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # made private (0o700) while it fills
        os.rename(staging, final)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot create {final}: {os_words(error)}") from None
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise


# ---- files the user names (--dot, --csv, --plot, --verdicts, bench --out) ------------------------
#
# Such a file is replaced only when nfx wrote it and nobody changed it since: nfx records the hash of
# every file it writes this way (``written.json`` in its cache folder, by absolute path), so a file
# of the user's, or one edited since, is refused, never overwritten. A path that is one of the
# command's own inputs (the NF, its captures) is always refused.

WRITTEN = "written.json"
WRITTEN_KEPT = 4096  # records kept (the oldest go first): a forgotten one only makes nfx refuse


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (hard links, symlinks and relative paths seen through)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


@contextlib.contextmanager
def _written_records() -> Iterator[dict]:
    """The records of files nfx wrote, locked against other nfx processes while the block runs;
    what the block leaves in the dict is saved."""
    import fcntl

    from explorer.cache import root
    folder = root()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f"{WRITTEN}.lock", "a")
    except OSError as error:
        raise OutputError(f"cannot record what nfx writes in {folder}: {os_words(error)}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            records = json.loads((folder / WRITTEN).read_text())
            if not isinstance(records, dict):
                records = {}
        except (OSError, ValueError):
            records = {}
        before = dict(records)
        yield records
        if records != before:
            kept = dict(list(records.items())[-WRITTEN_KEPT:])
            write_atomic(folder / WRITTEN, json.dumps(kept, indent=0) + "\n")


def claim_output(path: PathLike, option: str, inputs: Iterable[PathLike] = ()) -> Path:
    """``path``, if nfx may write the file the user named with ``option`` there (checked before any
    work): not one of ``inputs``, not a symlink, folder or device, and either nothing yet or a file
    nfx wrote there and nobody changed since."""
    path = Path(path)
    if str(path) in ("", "."):
        raise OutputError(f"{option}: name a file")
    for given in inputs:
        if given and same_file(path, Path(given)):
            raise OutputError(f"refusing to write {path} ({option}): it is one of this command's inputs")
    check_destination(path)
    check_writable(path.parent, option, path)  # missing folders are made, as for --out
    if path.exists():
        with _written_records() as records:
            recorded = records.get(os.path.realpath(path))
        if recorded is None:
            raise OutputError(f"refusing to overwrite {path} ({option}): nfx did not write it "
                              "(remove it or name another file)")
        if file_digest(path) != recorded:
            raise OutputError(f"refusing to overwrite {path} ({option}): it changed since nfx wrote it "
                              "(remove it or name another file)")
    return path


def write_output(path: PathLike, data: Union[bytes, str], option: str, inputs: Iterable[PathLike] = ()) -> Path:
    """Write ``data`` to the file the user named with ``option`` (``claim_output``'s rules), and
    record it as nfx's."""
    path = claim_output(path, option, inputs)
    raw = data.encode() if isinstance(data, str) else data
    write_atomic(path, raw)
    with _written_records() as records:
        records.pop(os.path.realpath(path), None)  # re-inserted last: the newest records are kept
        records[os.path.realpath(path)] = digest(raw)
    return path
