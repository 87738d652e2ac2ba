"""``nfx run NF.c --in 0=lan.pcap [--in 1=wan.pcap] --out DIR``: run the NF sequentially and write
what each device sends as ``DIR/dev<N>.pcap`` (one per NF device, floods on every device but the
input one), with the input packets' timestamps.

DIR is a pcap folder (``explorer.traffic.pcap_folder``): a new one appears whole, an existing one
keeps every file nfx did not write, a failure (a full disk) leaves nothing that looks finished.
``--verdicts FILE`` is written atomically, never through a symlink; both destinations are checked
before the NF is built or run.
"""
from __future__ import annotations

import json
from pathlib import Path

from explorer.commands.options import parse_defines
from explorer.outputs import check_destination, write_atomic
from explorer.run import RunResult, load_trace, run_trace
from explorer.traffic.pcap_folder import check_folder, check_writable, write_pcaps


def write_outputs(result: RunResult, timestamps, out: Path) -> dict[int, Path]:
    """Write ``dev<N>.pcap`` for every NF device into ``out``, all or nothing."""
    pcaps = {}
    for device in range(result.devices):
        emitted = result.emitted(device)
        pcaps[f"dev{device}.pcap"] = ([int(timestamps[i]) for i, _ in emitted], [f for _, f in emitted])
    paths = write_pcaps(out, pcaps)
    return {d: paths[f"dev{d}.pcap"] for d in range(result.devices)}


def check_verdicts(path: Path) -> None:
    """Refuse, before any work, a --verdicts destination nfx cannot or must not write."""
    check_destination(path)
    check_writable(path.parent, "--verdicts", path)


def main(args) -> int:
    defines = parse_defines(args.define)
    out = Path(args.out)
    check_folder(out)
    if args.verdicts:
        check_verdicts(Path(args.verdicts))
    trace = load_trace(args.inputs)
    result = run_trace(args.nf, trace, defines)
    files = write_outputs(result, trace.timestamps, out)
    if args.verdicts:
        write_atomic(args.verdicts, json.dumps([v.to_dict() for v in result.verdicts], indent=0) + "\n")
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
