"""``nfx sweep``: simulate an NF over NIC profiles x core counts x traffic kinds x seeds (serially,
on a local Dask cluster or on an existing one) and print the tidy table; ``--plot`` writes a Bokeh
page of imbalance against cores, one line per NIC and traffic (bokeh is imported only then)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from explorer import pipeline
from explorer.commands.options import parse_defines, parse_traffic_params
from explorer.errors import ConfigError
from explorer.outputs import claim_output, same_file, write_output


def _list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"bad --{what} {text!r}: expected a comma-separated list")
    return items


def _counts(text: str) -> list[int]:
    try:
        values = [int(t) for t in _list(text, "cores")]
    except ValueError:
        raise ConfigError(f"bad --cores {text!r}: expected numbers such as 2,4,8,16") from None
    if any(v < 1 for v in values):
        raise ConfigError(f"bad --cores {text!r}: core counts start at 1")
    return values


def main(args) -> int:
    traffic = _list(args.traffic, "traffic")
    params = parse_traffic_params(args.param, traffic)
    if args.seeds < 1:
        raise ConfigError(f"bad --seeds {args.seeds}: at least 1")
    to_stdout = args.csv == "-"  # the table alone on stdout, for a pipe
    if to_stdout and args.json:
        raise ConfigError("--csv - and --json both print the table: choose one")
    if args.plot == "-":
        raise ConfigError("--plot -: the plot is an HTML page; name a file for it")
    if args.csv and args.plot and not to_stdout and same_file(Path(args.csv), Path(args.plot)):
        raise ConfigError(f"--csv and --plot name the same file {args.csv}: name two")
    for path, option in ((None if to_stdout else args.csv, "--csv"), (args.plot, "--plot")):
        if path:
            claim_output(path, option, [args.nf])
    result = pipeline.sweep(args.nf, _list(args.nic, "nic"), _counts(args.cores), traffic, args.seeds,
                            args.packets, args.flows, parse_defines(args.define), args.scheduler, **params)
    if args.plot:
        write_output(args.plot, plot_html(result), "--plot", [args.nf])
    if to_stdout:
        sys.stdout.write(result.table.to_csv(index=False))
        return 0
    if args.csv:
        write_output(args.csv, result.table.to_csv(index=False), "--csv", [args.nf])
    if args.json:
        print(json.dumps({"nf": result.nf, "rows": json.loads(result.table.to_json(orient="records"))},
                         indent=2, sort_keys=True))
        return 0
    summary = result.summary()
    summary["writes"] = [f"{w:.1%}" if w == w else "-" for w in summary["writes"]]  # NaN: no lock taken
    print(f"{result.nf}: imbalance (max/mean per-core packets) over {args.seeds} seed(s), "
          f"{args.packets} packets each; writes: the share of packets that take the write lock")
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if (result.table.violations > 0).any():
        print("violations in: " + ", ".join(sorted({f"{r.nic}/{r.cores}/{r.traffic}"
                                                    for r in result.table.itertuples() if r.violations})))
    return 0


def sweep_figure(result):
    """Imbalance against cores (log2 axis), one line per NIC and traffic (mean over seeds), with each
    seed as a dot. Imports bokeh: call it from a UI or ``--plot`` only."""
    from bokeh.models import ColumnDataSource
    from bokeh.palettes import Category10_10
    from bokeh.plotting import figure

    fig = figure(title=f"{result.nf}: per-core imbalance", x_axis_type="log", x_axis_label="cores",
                 y_axis_label="max / mean packets per core", width=760, height=420)
    summary = result.summary()
    for k, ((nic, kind), part) in enumerate(summary.groupby(["nic", "traffic"], sort=True)):
        color = Category10_10[k % 10]
        fig.line("cores", "mean", source=ColumnDataSource(part), color=color, line_width=2,
                 legend_label=f"{nic} {kind}")
        seeds = result.table[(result.table.nic == nic) & (result.table.traffic == kind)]
        fig.scatter("cores", "imbalance", source=ColumnDataSource(seeds), color=color, size=5, alpha=0.5)
    fig.xaxis.ticker = sorted(set(int(c) for c in result.table.cores))
    fig.legend.location = "top_left"
    return fig


def plot_html(result) -> str:
    try:
        from bokeh.embed import file_html
        from bokeh.resources import INLINE
    except ImportError:
        raise ConfigError("--plot needs bokeh: install nf-explorer[widgets]") from None

    return file_html(sweep_figure(result), INLINE, f"nfx sweep {result.nf}")
