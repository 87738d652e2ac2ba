"""``nfx traffic KIND --out DIR``: write a seeded synthetic trace as ``DIR/dev0.pcap`` (LAN) and
``DIR/dev1.pcap`` (WAN), as a pcap folder (``explorer.traffic.pcap_folder``: a new one appears
whole, an existing one keeps every file nfx did not write)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from explorer.commands.options import parse_traffic_params
from explorer.traffic.generators import LAN, WAN, generate
from explorer.traffic.pcap import write_trace
from explorer.traffic.pcap_folder import check_folder


def main(args: argparse.Namespace) -> int:
    check_folder(Path(args.out))
    params = parse_traffic_params(args.param + ([f"skew={args.skew}"] if args.skew is not None else []), [args.kind])
    trace = generate(args.kind, packets=args.packets, flows=args.flows, seed=args.seed, **params)
    written = write_trace(trace, args.out, devices=(LAN, WAN))
    counts = np.bincount(trace.devices, minlength=max(written) + 1)
    print(f"{args.kind} traffic, seed {args.seed}: {len(trace)} packets over up to {args.flows} flows")
    for dev, path in written.items():
        print(f"wrote {path} ({int(counts[dev])} packets)")
    return 0
