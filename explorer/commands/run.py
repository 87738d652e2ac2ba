"""``nfx run NF.c --in 0=lan.pcap [--in 1=wan.pcap] --out DIR``: run the NF sequentially and write
what each device sends as ``DIR/dev<N>.pcap`` (one per NF device, floods on every device but the
input one), with the input packets' timestamps.

DIR is written all or nothing: the pcaps are written to a temporary folder next to it and moved in
once complete. Files nfx did not write are never overwritten: DIR keeps a ``.nfx-run.json`` listing
the files a previous ``nfx run`` wrote there, and only those may be replaced (or removed when the
new run has fewer devices).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from explorer.commands.options import parse_defines
from explorer.errors import ConfigError, TrafficError
from explorer.run import RunResult, load_trace, run_trace
from explorer.traffic.pcap import write_pcap

MARKER = ".nfx-run.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _previous_files(out: Path) -> set[str]:
    """The files an earlier ``nfx run`` wrote in ``out`` (from its marker)."""
    marker = out / MARKER
    if not marker.is_file():
        return set()
    try:
        names = json.loads(marker.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")}


def _check_out(out: Path, names: list[str]) -> set[str]:
    """Refuse an --out that is not a folder or holds files of ours that nfx did not write; returns
    the files of the previous run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if not out.exists():
        return set()
    previous = _previous_files(out)
    for name in [*names, MARKER]:
        target = out / name
        if (target.exists() or target.is_symlink()) and name not in previous and name != MARKER:
            raise ConfigError(f"refusing to overwrite {target}: nfx did not write it "
                              f"(remove it or choose another --out)")
    if (out / MARKER).exists() and not (out / MARKER).is_file():
        raise ConfigError(f"refusing to overwrite {out / MARKER}: it is not nfx's marker file")
    return previous


def write_outputs(result: RunResult, timestamps, out: Path) -> dict[int, Path]:
    """Write ``dev<N>.pcap`` for every NF device into ``out``, all or nothing."""
    names = [f"dev{d}.pcap" for d in range(result.devices)]
    previous = _check_out(out, names)
    parent = out.parent if not out.exists() else out
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".nfx-run-", dir=parent))
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create a folder there ({error.strerror or error})") from None
    try:
        for device, name in enumerate(names):
            emitted = result.emitted(device)
            write_pcap(staging / name, [int(timestamps[i]) for i, _ in emitted], [f for _, f in emitted])
        (staging / MARKER).write_text(json.dumps({"files": names}, indent=1) + "\n")
        if not out.exists():
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's folder is private
            os.rename(staging, out)  # the whole folder appears at once
        else:
            for name in [*names, MARKER]:
                os.replace(staging / name, out / name)
            for stale in sorted(previous - set(names) - {MARKER}):
                (out / stale).unlink(missing_ok=True)
    except OSError as error:
        raise TrafficError(f"--out {out}: cannot write ({error.strerror or error})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {d: out / name for d, name in enumerate(names)}


def _write_verdicts(result: RunResult, path: Path) -> None:
    """The verdict log as JSON, replaced atomically."""
    text = json.dumps([v.to_dict() for v in result.verdicts], indent=0) + "\n"
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".nfx-verdicts-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp's file is private
        os.replace(temp, path)
        temp = None
    except OSError as error:
        raise ConfigError(f"--verdicts {path}: cannot write ({error.strerror or error})") from None
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)


def main(args) -> int:
    defines = parse_defines(args.define)
    trace = load_trace(args.inputs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    result = run_trace(args.nf, trace, defines)
    files = write_outputs(result, trace.timestamps, out)
    if args.verdicts:
        _write_verdicts(result, Path(args.verdicts))
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.nf}: {summary['in']} packets in: {summary['forwarded']} forwarded, "
          f"{summary['flooded']} flooded, {summary['dropped']} dropped, {summary['runts']} runts")
    for device, path in files.items():
        print(f"  device {device} sent {summary['out'][str(device)]} frames -> {path}")
    if args.verdicts:
        print(f"  verdict log -> {args.verdicts}")
    return 0
