"""``nfx run NF.c --in 0=lan.pcap [--in 1=wan.pcap] --out DIR``: run the NF sequentially and write
what each device sends as ``DIR/dev<N>.pcap`` (one per NF device, floods on every device but the
input one), with the input packets' timestamps.

DIR is a pcap folder (``explorer.traffic.pcap_folder``): a new one appears whole, an existing one
keeps every file nfx did not write, a failure (a full disk) leaves nothing that looks finished.
``--verdicts FILE`` is written atomically, never through a symlink, and replaces only a file nfx
wrote (``explorer.outputs.write_output``); no output may be one of the inputs (the NF, a capture),
and the log may not be one of DIR's captures. Both destinations are checked before the NF is built
or run.
"""
from __future__ import annotations

import json
from pathlib import Path

from explorer.commands.options import parse_defines
from explorer.outputs import claim_output, write_output
from explorer.errors import OutputError
from explorer.run import RunResult, load_trace, run_trace
from explorer.traffic.pcap import parse_inputs
from explorer.traffic.pcap_folder import MARKER, check_folder, write_pcaps
from explorer.wording import count


def write_outputs(result: RunResult, timestamps, out: Path, inputs=()) -> dict[int, Path]:
    """Write ``dev<N>.pcap`` for every NF device into ``out``, all or nothing (never over one of
    ``inputs``)."""
    pcaps = {}
    for device in range(result.devices):
        emitted = result.emitted(device)
        pcaps[f"dev{device}.pcap"] = ([int(timestamps[i]) for i, _ in emitted], [f for _, f in emitted])
    paths = write_pcaps(out, pcaps, inputs)
    return {d: paths[f"dev{d}.pcap"] for d in range(result.devices)}


def check_verdicts(path: Path, inputs, out: Path) -> None:
    """Refuse, before any work, a --verdicts destination nfx cannot or must not write."""
    if path.absolute() == out.absolute():
        raise OutputError(f"--verdicts {path}: is the folder --out names; name a file for the verdict log")
    if path.parent.absolute() == out.absolute() and path.name.startswith("dev") and path.suffix == ".pcap":
        raise OutputError(f"--verdicts {path}: names one of the captures --out {out} receives")
    if path.parent.absolute() == out.absolute() and path.name == MARKER:
        raise OutputError(f"--verdicts {path}: names the record of what nfx wrote in --out {out}")
    claim_output(path, "--verdicts", inputs)


def main(args) -> int:
    defines = parse_defines(args.define)
    out = Path(args.out)
    check_folder(out)
    inputs = [args.nf, *parse_inputs(args.inputs).values()]
    if args.verdicts:
        check_verdicts(Path(args.verdicts), inputs, out)
    trace = load_trace(args.inputs)
    result = run_trace(args.nf, trace, defines)
    files = write_outputs(result, trace.timestamps, out, inputs)
    if args.verdicts:
        write_output(args.verdicts, json.dumps([v.to_dict() for v in result.verdicts], indent=0) + "\n",
                     "--verdicts", inputs)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.nf}: {count(summary['in'], 'packet')} in: {summary['forwarded']} forwarded, "
          f"{summary['flooded']} flooded, {summary['dropped']} dropped, {count(summary['runts'], 'runt')}")
    for device, path in files.items():
        print(f"  device {device} sent {count(summary['out'][str(device)], 'frame')} -> {path}")
    if args.verdicts:
        print(f"  verdict log -> {args.verdicts}")
    return 0
