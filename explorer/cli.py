"""The ``nfx`` command: argument parsing and error reporting; each subcommand lives in
``explorer.commands.<name>`` and receives the parsed arguments."""
from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
import warnings
from typing import NoReturn, Optional, Sequence

from explorer.commands.options import check_numbers
from explorer.errors import NfxError
from explorer.processes import Terminated, handle_termination, stopped_by

SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a Unix tool whose reader went away exits with


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other error of nfx."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _path(text: str) -> str:
    """A file or folder argument: an empty one (an unset shell variable) is refused, since ``Path('')``
    is the current folder, where nfx would otherwise write, or an output it would skip without a word."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?): name a file or folder")
    return text


def _add_nf(p: argparse.ArgumentParser) -> None:
    p.add_argument("nf", type=_path, help="the NF's C file (e.g. sample_nfs/fw.c)")
    p.add_argument("--define", "-D", action="append", default=[], metavar="NAME=VALUE",
                   help="override a configuration #define of the NF (repeatable)")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _add_traffic_in(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inputs", action="append", default=[], metavar="DEV=PCAP",
                   help="the pcap received on device DEV (repeatable)")


def _add_rss(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nic", default="e810", help="NIC profile: e810, x710, cx5, 82599 (default e810)")
    p.add_argument("--cores", default="16", help="number of cores (default 16)")
    p.add_argument("--seed", default="0", help="seed for the free key bits (default 0)")


def _add_override(p: argparse.ArgumentParser) -> None:
    p.add_argument("--override", action="append", default=[], metavar="OBJ:DEV=FIELD,...",
                   help="shard OBJ on these fields for device DEV, or OBJ=shard|replicate|lock (repeatable)")


def _add_replication(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replication", default="lagged", choices=["lagged", "strict"],
                   help="sn with replicated objects: other cores apply a broadcast write before their next burst "
                        "(lagged, the default) or before the writing packet completes (strict)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nfx", description="Explore, shard and parallelize a sequential NF.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="build the NF and run it sequentially on a trace")
    _add_nf(p); _add_traffic_in(p); _add_json(p)
    p.add_argument("--out", required=True, type=_path, metavar="DIR", help="folder for dev<N>.pcap outputs")
    p.add_argument("--verdicts", type=_path, metavar="FILE", help="also write the per-packet verdict log (JSON)")

    p = sub.add_parser("analyze", help="every path of nf_process and its state accesses")
    _add_nf(p); _add_json(p)
    p.add_argument("--dot", type=_path, metavar="FILE", help="write the state-access graph as DOT")

    p = sub.add_parser("solve", help="decide sharding and solve RSS keys")
    _add_nf(p); _add_rss(p); _add_json(p)
    _add_override(p)
    p.add_argument("--strategy", default="auto", choices=["auto", "sn", "locks", "tm"],
                   help="auto (default): shared-nothing (sn) where the state shards, else locks; or force sn, locks or tm")

    p = sub.add_parser("generate", help="write a parallel DPDK project")
    _add_nf(p); _add_rss(p)
    p.add_argument("-o", "--out", required=True, type=_path, metavar="DIR", help="the folder to write the project into")
    p.add_argument("--strategy", default="auto", choices=["auto", "seq", "sn", "locks", "tm"],
                   help="auto (default): as solve decides; or seq (the NF on one core), sn, locks or tm")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder nfx did not create, or where files changed since nfx wrote "
                        "them: such files are kept and their new versions go beside them as NAME.new")
    _add_replication(p)
    _add_override(p)

    p = sub.add_parser("check", help="compare the parallel build with the sequential one on a trace")
    _add_nf(p); _add_traffic_in(p); _add_rss(p); _add_json(p)
    p.add_argument("--strategy", default="auto", choices=["auto", "sn", "locks", "tm"],
                   help="the parallel build to compare: auto (default) as solve decides, or sn, locks or tm")
    _add_override(p)
    p.add_argument("--replies", action=argparse.BooleanOptionalAction, default=None,
                   help="also send each run replies to what it sent (default: when the NF rewrites headers)")
    _add_replication(p)
    p.add_argument("--traffic", metavar="KIND[:NAME=VALUE,...]",
                   help="instead of --in: paths (packets that follow every path of the NF the search reaches), "
                        "or a generator kind: uniform, zipf, prefix, bidir, churn, scan, heartbeat, mixed, "
                        "with its parameters if any, e.g. zipf:skew=1.2")
    p.add_argument("--packets", default=None, help="generated traffic: packets (default 20000; not for paths)")
    p.add_argument("--flows", default=None, help="generated traffic: flows (default 2000; not for paths)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a traffic generator parameter, e.g. heartbeat_share=0.01 (repeatable)")

    p = sub.add_parser("bench", help="measure Mpps per strategy and core count")
    _add_nf(p); _add_json(p); _add_traffic_in(p)
    p.add_argument("--cores", default="1,2", help="comma-separated core counts (default 1,2)")
    p.add_argument("--strategy", action="append", default=[], metavar="S[,S...]",
                   help="measure these strategies (seq, sn, locks, tm) next to seq, e.g. locks,tm (repeatable; "
                        "default: the one solve picks)")
    p.add_argument("--packets", default="5000000",
                   help="timed packets per measurement (default 5,000,000: about half a second per build, long "
                        "enough that a parallel build's start and stop do not weigh on its rate)")
    p.add_argument("--out", type=_path, metavar="DIR", help="write bench.json and a plot here")
    _add_replication(p)
    p.add_argument("--traffic", metavar="KIND[:NAME=VALUE,...]",
                   help="traffic to measure on, e.g. zipf:skew=1.2 (default: the NF's main path, or for an NF with "
                        "replicated objects, traffic of its rare writers at 1 per 1,000 packets); --in measures "
                        "on captures instead")
    p.add_argument("--replies", action=argparse.BooleanOptionalAction, default=None,
                   help="measure each build on replies to what it forwards too (default: when the NF rewrites headers)")
    p.add_argument("--repeat", default="3", help="measurements per build, in rounds; the median is reported")

    p = sub.add_parser("simulate", help="per-core load and sharding violations of an RSS plan")
    _add_nf(p); _add_traffic_in(p); _add_rss(p); _add_json(p)
    p.add_argument("--traffic", metavar="KIND[:NAME=VALUE,...]",
                   help="uniform, zipf, prefix, bidir, churn, scan, heartbeat, mixed, with its parameters if any, "
                        "e.g. zipf:skew=1.2; or paths: packets that follow every path of the NF (instead of --in)")
    p.add_argument("--packets", default=None, help="generated traffic: packets (default 100000; not for paths)")
    p.add_argument("--flows", default=None, help="generated traffic: flows (default 10000; not for paths)")
    p.add_argument("--key", action="append", default=[], metavar="DEV=HEX", help="replace a device's key")
    _add_override(p)
    p.add_argument("--rebalance", action="store_true", help="rebalance the RETA from measured load")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a traffic generator parameter, e.g. server_prefix=172.16.0.10/32 (repeatable)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="simulate generated traffic on Dask: 'local' or a scheduler such as tcp://host:8786")

    p = sub.add_parser("sweep", help="simulate over NICs x core counts x traffic kinds x seeds (Dask)")
    _add_nf(p); _add_json(p)
    p.add_argument("--nic", default="e810", help="comma-separated NIC profiles (default e810)")
    p.add_argument("--cores", default="2,4,8,16", help="comma-separated core counts (default 2,4,8,16)")
    p.add_argument("--traffic", default="uniform", help="comma-separated traffic kinds (default uniform)")
    p.add_argument("--seeds", type=int, default=3, help="traffic seeds 0..N-1 per combination (default 3)")
    p.add_argument("--packets", default="50000", help="packets per simulation (default 50000)")
    p.add_argument("--flows", default="5000", help="flows per simulation (default 5000)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a traffic generator parameter every kind accepts (repeatable)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="'local' (a local Dask cluster) or a dask.distributed scheduler, e.g. tcp://host:8786")
    p.add_argument("--csv", type=_path, metavar="FILE",
                   help="write the tidy table as CSV ('-': print it alone on stdout)")
    p.add_argument("--plot", type=_path, metavar="FILE", help="write a Bokeh page of imbalance against cores (HTML)")

    p = sub.add_parser("traffic", help="write a seeded synthetic trace as one pcap per device")
    p.add_argument("kind", metavar="KIND[:NAME=VALUE,...]",
                   help="uniform, zipf, prefix, bidir, churn, scan, heartbeat, mixed, with its parameters if any "
                        "(zipf:skew=1.2); or paths (with --nf): packets that follow every path of the NF the search "
                        "reaches")
    p.add_argument("--out", required=True, type=_path, metavar="DIR", help="folder for dev<N>.pcap")
    p.add_argument("--nf", type=_path, metavar="NF.c", help="paths: the NF whose paths the packets follow")
    p.add_argument("--define", "-D", action="append", default=[], metavar="NAME=VALUE",
                   help="paths: override a configuration #define of the NF (repeatable)")
    p.add_argument("--packets", default=None, help="packets (default 10000; not for paths)")
    p.add_argument("--flows", default=None, help="flows (default 1000; not for paths)")
    p.add_argument("--seed", default="0", help="the generator's seed (default 0): the same seed, the same pcaps")
    p.add_argument("--skew", type=float, default=None, help="Zipf exponent (zipf, prefix, bidir)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a traffic generator parameter, e.g. heartbeat_share=0.01 (repeatable)")

    p = sub.add_parser("cache", help="the build cache: its size (info) or empty it (clean)")
    p.add_argument("action", nargs="?", default="info", choices=["info", "clean"],
                   help="info: where the cache is and its size (default); clean: empty it")

    p = sub.add_parser("explore", help="open the interactive explorer (Voila) on an NF")
    p.add_argument("nf", nargs="?", default=None, type=_path,
                   help="the NF to open (default: the page's own choice, fw.c)")
    p.add_argument("--port", default="8866", help="the page's port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (the page's address is printed)")
    p.add_argument("--cull-idle", type=int, default=600, metavar="SECONDS",
                   help="shut a closed page's kernel down after this long idle (default 600)")
    return parser


def _quiet_stdout() -> None:
    """Standard output's reader went away (``nfx solve ... | head``; children's pipes never raise:
    subprocess absorbs their EPIPE): point it at /dev/null so the interpreter's last flush is quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _show_warning(command: str):
    """Each warning once per command: a check or bench builds the NF several times (sequential,
    parallel, per strategy), and each build shows gcc's warnings about it again."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if text not in shown:
            shown.add(text)
            print(f"nfx {command}: warning: {text}", file=sys.stderr)
    return show


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handle_termination()
    warnings.showwarning = _show_warning(args.command)
    try:
        check_numbers(args)
        module = importlib.import_module(f"explorer.commands.{args.command}")
        return int(module.main(args) or 0)
    except BrokenPipeError:
        _quiet_stdout()
        return SIGPIPE_STATUS
    except NfxError as error:
        print(f"nfx {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"nfx {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"nfx {args.command}: interrupted", file=sys.stderr)
        return 130
    except ctypes.ArgumentError as error:  # a signal that came while ctypes converted a Z3 call's arguments
        how = stopped_by(error)
        if how is None:
            raise
        print(f"nfx {args.command}: {how}", file=sys.stderr)
        return 143 if how == "terminated" else 130


if __name__ == "__main__":
    sys.exit(main())
