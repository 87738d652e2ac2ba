"""The explorer: linked panes over one NF, in the spirit of Compiler Explorer.

Left, what the NF *is*: its source and its state-access graph. Right, what to *do* with it: shard
and solve, simulate, generate, verify; each section has its controls, its button and its own
status line at the top, which stays in view while the section's results scroll below it. One focus
(an object or a call path, picked in the left pane or by clicking an object's name) is highlighted
in every pane.

Results never outlive their inputs unannounced: every result carries the ``Inputs`` it was computed
for and says so. A change of NIC, cores, seed, strategy or overrides re-solves at once; a change of
NF or defines waits for Load. Until the solution matches the controls, Simulate, Generate and
Verify refuse, and their disabled buttons say why (so does a result shown for older inputs).

Every action is an engine call made under its section's status (which shows progress and any
``NfxError``), followed by view updates from the result's ``to_dict()`` and ``pipeline.explain``:
no analysis happens here. The engine is a parameter so tests can hand in a fake one; by default it
is ``explorer.pipeline``.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Optional

import ipywidgets
import traitlets

from explorer.codegen.project import NEW_SUFFIX
from explorer.errors import AnalysisWarning, NfxError
from explorer.limits import CORES
from explorer.pipeline import PATHS
from explorer.traffic.pcap import TrafficWarning, read_pcap
from widgets.access_graph import objects_of_path, paths_text
from widgets.graph_view import NOTHING, GraphView, focus_choices
from widgets.inputs import Inputs, plural
from widgets.nf_picker import SAMPLES_DIR, NfPicker
from widgets.project_view import ProjectView, default_folder, where_folder
from widgets.sharding_table import ShardingTable, rows_from
from widgets.simulator import SimulatorPanel
from widgets.solution_view import SolutionView, spread_warning
from widgets.source_view import SourceView, same_file
from widgets.status import STATUS_CSS, StatusLine, accepts
from widgets.verify_view import VerifyPanel

NIC_PROFILES = ("e810", "x710", "cx5", "82599")
STRATEGIES = ("auto", "sn", "locks", "tm")
PROGRESS_CHUNK = 50_000  # packets per simulated chunk at least: the progress bar moves between chunks
SHOWN_SOURCE_LIMIT = 1 << 20  # bytes: a file that failed to load and is larger is not shown (nor read)
CHECK_PACKETS, CHECK_FLOWS = 20_000, 2_000  # the trace pipeline.check makes of a traffic kind (seed 0)

PAGE_CSS = STATUS_CSS + """<style>
.nfx-app { width: 100%; font-size: 13px; }
.nfx-app .nfx-title { font-size: 17px; font-weight: bold; margin-right: 14px; }
.nfx-app .nfx-context { font-size: 12px; color: #57606a; }
.nfx-app .nfx-context b { color: #24292f; }
.nfx-app .nfx-stale-note { color: #9a6700; font-weight: bold; }
.nfx-panes { gap: 12px; align-items: stretch; }
.nfx-pane { flex: 1 1 0; min-width: 520px; }
.nfx-app .nfx-toolbar { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-bottom: 4px;
                        background: white; }
.nfx-app .nfx-pane { height: calc(100vh - 112px); min-height: 460px; }
.nfx-app .nfx-pane-left { height: calc(100vh - 148px); min-height: 424px; }
.nfx-app .nfx-pane > .widget-tab-contents { height: calc(100% - 28px); box-sizing: border-box; }
.nfx-app .nfx-pane > .widget-tab-contents > .widget-vbox { height: 100%; }
.nfx-app .nfx-body { flex: 1 1 0; min-height: 0; overflow-y: auto; padding-right: 4px; }
.nfx-app .nfx-body > * { flex: 0 0 auto; }
.nfx-app .nfx-stale { opacity: 0.45; }
.nfx-app .nfx-graph-box svg { background: white; }
/* Fit stops shrinking where labels would get too small to read (graph_view.MIN_TEXT_PX): the
   drawing then scrolls sideways in its own box, under the Summary / Fit buttons. */
.nfx-app .nfx-graph-box { overflow-x: auto; }
/* ...which it cannot do if its HTML widget, a flex item, widens to the drawing's min-width. */
.nfx-app .nfx-graph-host > .widget-html-content { min-width: 0; }
.nfx-app .nfx-legend { font-size: 12px; display: flex; flex-flow: row wrap; gap: 4px 14px; margin: 4px 0; }
.nfx-app .lm-TabBar-tab, .nfx-app .p-TabBar-tab { font-size: 13px; min-width: 90px; }
.nfx-app .widget-html-content { line-height: 1.45; }
/* A narrow window (a phone, half a screen): the panes stack, rows of controls wrap and no control is
   wider than the window, which clips what does not fit (the Load button, the whole right pane). */
.nfx-panes { flex-wrap: wrap; }
.nfx-panes > .widget-box, .nfx-app .nfx-pane { min-width: min(480px, 100%) !important; }
.nfx-app .widget-hbox { flex-wrap: wrap; }
.nfx-app .widget-inline-hbox { max-width: 100%; }
.nfx-app .nfx-sharding > .widget-gridbox { overflow-x: auto; }  /* its columns have fixed widths */
</style>"""


def section(toolbar: Optional[ipywidgets.Widget], body: ipywidgets.Widget) -> ipywidgets.VBox:
    """A tab's content: the toolbar (controls, button, status) fixed, the body scrolling below it."""
    body.add_class("nfx-body")
    return ipywidgets.VBox([toolbar, body] if toolbar is not None else [body], layout=ipywidgets.Layout(width="100%"))


def panel(view: ipywidgets.VBox) -> ipywidgets.VBox:
    """A section view that has its own ``toolbar`` and ``body``: the body scrolls."""
    view.body.add_class("nfx-body")
    view.layout.width = "100%"
    return view


class ExplorerApp(ipywidgets.VBox):
    """The whole explorer on one NF. ``analysis`` / ``solution`` / ``simulation`` / ``project`` /
    ``check`` hold the engine's last results (None until produced), ``words`` what
    ``pipeline.explain`` said of the analysis or solution, ``focus`` what every pane highlights."""

    analysis = traitlets.Any(None, allow_none=True)
    solution = traitlets.Any(None, allow_none=True)
    simulation = traitlets.Any(None, allow_none=True)
    project = traitlets.Any(None, allow_none=True)
    check = traitlets.Any(None, allow_none=True)
    words = traitlets.Dict()
    focus = traitlets.Unicode(NOTHING)

    def __init__(self, nf_path: str = "", *, engine: Optional[ModuleType] = None,
                 samples_dir: Path = SAMPLES_DIR, out_dir: str = "", auto_solve: bool = True, **kwargs: Any) -> None:
        self.engine = engine if engine is not None else importlib.import_module("explorer.pipeline")
        self.auto_solve = auto_solve
        self.out_dir = out_dir  # where projects go ("": beside the NF, as <nf>-parallel)
        self.loaded: Optional[tuple[str, dict[str, str]]] = None  # the NF and defines analysed
        self.analysed_seconds = 0.0
        self.load_warnings: tuple[AnalysisWarning, ...] = ()  # those of the loaded NF
        self.capture_warnings: list[str] = []  # what reading the uploaded captures warned of
        self.solved: Optional[Inputs] = None  # what ``solution`` was computed for
        self.made: dict[str, Inputs] = {}  # section -> what its shown result was computed for

        # Header: the NF, its status, and what the shown results are for.
        self.picker = NfPicker(nf_path, samples_dir)
        self.load_status = StatusLine("Pick an NF and press Load.")
        self.load_status.add_class("nfx-load-status")
        self.context = ipywidgets.HTML()
        self.context.add_class("nfx-context")

        # Left pane: what the NF is.
        self.focus_picker = ipywidgets.Dropdown(description="Focus", options=[("nothing", NOTHING)], value=NOTHING,
                                                style={"description_width": "46px"},
                                                layout=ipywidgets.Layout(width="100%"))
        self.source_view = SourceView()
        self.graph_view = GraphView()
        self.left = ipywidgets.Tab(children=[section(None, self.source_view), section(None, self.graph_view)],
                                   titles=["Source", "State-access graph"])

        # Right pane: what to do with it.
        self.nic = ipywidgets.Dropdown(options=list(NIC_PROFILES), value="e810", description="NIC",
                                       style={"description_width": "32px"}, layout=ipywidgets.Layout(width="130px"))
        self.cores = ipywidgets.BoundedIntText(16, min=CORES.low, max=CORES.high, description="Cores",
                                               style={"description_width": "42px"},
                                               layout=ipywidgets.Layout(width="115px"))
        self.strategy = ipywidgets.Dropdown(options=list(STRATEGIES), value="auto", description="Strategy",
                                            style={"description_width": "58px"},
                                            layout=ipywidgets.Layout(width="150px"))
        self.seed = ipywidgets.BoundedIntText(0, min=0, max=2**32 - 1, description="Seed",
                                              style={"description_width": "36px"},
                                              layout=ipywidgets.Layout(width="120px"))
        self.solve_button = ipywidgets.Button(description="Solve", button_style="primary",
                                              layout=ipywidgets.Layout(width="90px"))
        self.solve_status = StatusLine("Load an NF: it is solved as soon as it is analysed.")
        self.solve_status.add_class("nfx-solve-status")
        self.table = ShardingTable()
        self.solution_view = SolutionView()
        solve_toolbar = ipywidgets.VBox([ipywidgets.HBox([self.nic, self.cores, self.strategy, self.seed,
                                                          self.solve_button],
                                                         layout=ipywidgets.Layout(flex_flow="row wrap")),
                                         self.solve_status])
        solve_toolbar.add_class("nfx-toolbar")
        solve_toolbar.add_class("nfx-solve-toolbar")
        self.simulator = SimulatorPanel()
        self.project_view = ProjectView()
        self.verify_panel = VerifyPanel()
        self.right = ipywidgets.Tab(children=[
            section(solve_toolbar, ipywidgets.VBox([self.solution_view.head, self.table, self.solution_view.rss])),
            panel(self.simulator), panel(self.project_view), panel(self.verify_panel),
        ], titles=["Sharding and RSS", "Simulate", "Generate", "Verify"])
        for tab in (self.left, self.right):
            tab.add_class("nfx-pane")
        self.left.add_class("nfx-pane-left")
        self.left.layout = ipywidgets.Layout(flex="1 1 0", min_width="480px")
        self.right.layout = ipywidgets.Layout(flex="1.25 1 0", min_width="560px")

        header = ipywidgets.HBox([ipywidgets.HTML('<span class="nfx-title">nf-explorer</span>'), self.picker,
                                  self.load_status], layout=ipywidgets.Layout(align_items="center",
                                                                              flex_flow="row wrap"))
        super().__init__([ipywidgets.HTML(PAGE_CSS), header, self.context,
                          ipywidgets.HBox([ipywidgets.VBox([self.focus_picker, self.left],
                                                           layout=ipywidgets.Layout(flex="1 1 0", min_width="480px")),
                                           self.right], layout=ipywidgets.Layout(width="100%"))], **kwargs)
        self.children[-1].add_class("nfx-panes")
        self.add_class("nfx-app")

        self.picker.button.on_click(lambda _b: self.load())
        self.solve_button.on_click(lambda _b: self.solve())
        self.simulator.run_button.on_click(lambda _b: self.simulate())
        self.simulator.rebalance_button.on_click(lambda _b: self.simulate(rebalance=True))
        self.project_view.button.on_click(lambda _b: self.generate())
        self.verify_panel.button.on_click(lambda _b: self.verify())
        for control in (self.nic, self.cores, self.strategy, self.seed):
            control.observe(lambda _c: self._inputs_changed(), "value")
        self.table.observe(lambda _c: self._inputs_changed(), "overrides")
        self.picker.path_box.observe(lambda _c: self._refresh(), "value")
        self.picker.defines_box.observe(lambda _c: self._refresh(), "value")
        self.verify_panel.wrong_on_purpose.observe(lambda _c: self._refresh(), "value")
        self.simulator.traffic.observe(lambda _c: self._refresh(), "value")  # an upload, or none
        self.project_view.confirm.observe(lambda _c: self._refresh(), "value")
        self.project_view.folder.observe(lambda _c: self._show_destination(), "value")
        traitlets.link((self.focus_picker, "value"), (self, "focus"))
        self.table.observe(lambda change: setattr(self, "focus", f"object {change['new']}") if change["new"] else None,
                           "clicked")
        self._refresh()
        if nf_path:
            try:
                self.load()
            except Exception:  # a bug, named on the load line: the page still comes up, to pick another NF
                logging.getLogger(__name__).exception("nfx explore: loading %s failed", nf_path)

    # ---- inputs -----------------------------------------------------------------------------

    def inputs(self) -> Optional[Inputs]:
        """What a solve would be computed for now (None before an NF is loaded)."""
        if self.loaded is None:
            return None
        path, defines = self.loaded
        return Inputs.of(path, defines, self.nic.value, self.cores.value, self.seed.value, self.strategy.value,
                         self.table.overrides)

    def pending_nf(self) -> str:
        """Why the loaded NF is not what the NF box asks for ("" when it is)."""
        if self.loaded is None:
            return ""
        path, defines = self.loaded
        box = self.picker.path_box.value.strip()
        try:
            wanted = self.picker.defines_now()
        except Exception:  # malformed defines: Load will say what is wrong with them
            wanted = None
        if box != path:
            return f"the NF box names {Path(box).name or 'nothing'}, the results are for {Path(path).name}: press Load"
        if wanted != defines:
            return f"the defines changed since {Path(path).name} was loaded: press Load"
        return ""

    def why_not(self, action: str) -> str:
        """Why ``action`` (solve, simulate, generate, verify) cannot run now; "" when it can."""
        if self.analysis is None:
            return "Load an NF first."
        pending = self.pending_nf()
        if pending:
            return pending[0].upper() + pending[1:] + "."
        if action == "solve":
            return ""
        if self.solution is None:
            return "Solve first."
        now = self.inputs()
        if self.solved != now:
            changed = ", ".join(self.solved.changes(now)) if self.solved and now else "the inputs"
            return f"Solve first: {changed} changed since the last solve."
        if action == "simulate" and int(self.analysis.to_dict().get("devices", 2)) < 2 \
                and not self.simulator.uploaded():
            return (f"{Path(now.nf).name} has one device, and generated traffic arrives on two (LAN 0 and WAN 1): "
                    "upload a capture for device 0.")
        if action == "generate" and not self.solution.to_dict().get("valid", True):
            return ("The solver showed this sharding is wrong (see Sharding and RSS): fix or reset the overrides; "
                    "nothing wrong is ever written.")
        if action == "verify" and not self.solution.to_dict().get("valid", True) \
                and not self.verify_panel.wrong_on_purpose.value:
            return "The solver showed this sharding is wrong: tick \"build it anyway\" to watch it fail, or fix the overrides."
        return ""

    def _inputs_changed(self) -> None:
        if self.auto_solve and self.analysis is not None and not self.pending_nf():
            self.solve()
        else:
            self._refresh()

    # ---- actions (the buttons call these; notebooks and tests may too) ------------------------

    def load(self) -> None:
        """Analyse the NF the picker names, show its source, graph and objects, then solve it."""
        with self.table.waiting():
            self._load()

    def _load(self) -> None:
        choice = self.load_status.run("Reading the NF choice", self.picker.commit, final=False)
        if choice is None:
            return
        path, defines = choice
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            analysis = self.load_status.run(f"Analysing {Path(path).name}", self.engine.analyze, path,
                                            defines=defines, final=False)
        found = [w.message for w in caught if issubclass(w.category, AnalysisWarning)]
        notes = [str(w) for w in found]
        for w in caught:  # anything else goes on as if it had not been caught here
            if not issubclass(w.category, AnalysisWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if analysis is None:
            self._show_failure(path)
            return
        self.analysed_seconds = self.load_status.seconds
        data = analysis.to_dict()
        kept = self._kept_overrides(path, data)
        another = self.loaded is None or Path(self.loaded[0]).resolve() != Path(path).resolve()
        with self.hold_trait_notifications():
            self.analysis, self.loaded, self.solved, self.made = analysis, (path, defines), None, {}
            self.solution = self.simulation = self.project = self.check = None
        self.focus = NOTHING
        self.focus_picker.options = [("nothing", NOTHING)] + focus_choices(data)
        # under the status line: a bug in the wording says so there instead of leaving it busy
        self.words = self.load_status.run(f"Analysing {Path(path).name}", self._explain, analysis, final=False) or {}
        text = Path(data["source"]).read_text(encoding="utf-8", errors="replace")
        self.load_warnings = tuple(found)  # the Source pane shows them again after a failed load
        self.source_view.show(data, text, found)
        self.graph_view.analysis = data
        self.graph_view.words = self.words
        if another:  # shown before any Generate
            self.project_view.follow(default_folder(path, self.out_dir))
        self.simulator.devices = int(data.get("devices", 2))
        self.verify_panel.offer_traffic(int(data.get("devices", 2)))
        auto_solve, self.auto_solve = self.auto_solve, False  # solved once, below, with them
        try:
            self.table.overrides = kept
        finally:
            self.auto_solve = auto_solve
        self.table.show(rows_from(data, None, self.words), int(data.get("devices", 2)))
        self._clear_results()
        self.load_status.report("warning" if notes else "done",
                                f"Loaded {Path(path).name}: {plural(len(data['paths']), 'call path')}, "
                                f"{plural(len(data['objects']), 'state object')}, analysed in "
                                f"{self.analysed_seconds:.2f} s"
                                + (f"; your overrides on {', '.join(sorted(kept))} kept" if kept else "")
                                + "".join(f"\nwarning: {n}" for n in notes))
        if self.auto_solve:
            self.solve()
        else:
            self._refresh()

    def _show_failure(self, path: str) -> None:
        """The NF's source with the line its analysis failed at, when the error points into it (a
        syntax error, an unsupported construct): the status line alone names a line nobody sees.
        A failure elsewhere (no nf_process, a missing header) shows the file unmarked, and one that
        cannot or should not be shown (missing, not a .c file, a device, over SHOWN_SOURCE_LIMIT: a
        binary picked by mistake) the loaded NF again: never the marks of an earlier failure."""
        error = self.load_status.error
        if error is None:
            return
        location = getattr(error, "location", None)
        line = getattr(location, "line", 0)
        name = Path(path).name
        try:
            if Path(path).suffix != ".c" or not Path(path).is_file() or Path(path).stat().st_size > SHOWN_SOURCE_LIMIT:
                raise OSError("not shown")  # /dev/zero never ends; megabytes take pygments minutes
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            if self.source_view.caption and self.analysis is not None:  # it shows an earlier failure
                data = self.analysis.to_dict()
                self.source_view.show(data, Path(data["source"]).read_text(encoding="utf-8", errors="replace"),
                                      self.load_warnings)
            return
        shown = "" if self.loaded is None else (
            f"; the other panes still show the last version of {name} that loaded"
            if same_file(self.loaded[0], path) else f"; the other panes still show {Path(self.loaded[0]).name}")
        if line and same_file(str(location.file), path):
            self.source_view.show_error(path, text, int(line), error.message, f"{name} did not load{shown}")
        else:
            self.source_view.show_error(path, text, 0, error.message,
                                        f"{name} did not load ({error}){shown}")

    def solve(self) -> None:
        """Solve RSS keys for the loaded NF with the chosen NIC, cores, strategy, seed and overrides."""
        refused = self.why_not("solve")
        if refused:
            self.solve_status.report("error", refused)
            return
        with self.table.waiting():
            self._solve()

    def _solve(self) -> None:
        now = self.inputs()
        solution = self.solve_status.run(
            f"Solving {Path(now.nf).name} for {plural(now.cores, 'core')} on {now.nic}", self.engine.solve,
            self.analysis, nic=now.nic, cores=now.cores, seed=now.seed, overrides=self._overrides(),
            strategy=now.strategy, done=now.label(), final=False)
        if solution is None:
            self._refresh()  # the shown solution no longer matches the controls: say so
            return
        seconds = self.solve_status.seconds
        data = solution.to_dict()
        not_run = None  # why the NF could not be run on the two packets (an nf_init that fails, say)
        if data.get("valid", True):
            words = self.solve_status.run(f"Explaining the solution of {Path(now.nf).name}", self._explain,
                                          solution, final=False)
        else:
            words = self.solve_status.run("The sharding is wrong: finding two packets it splits and running "
                                          f"{Path(now.nf).name} on them", self._explain, solution, final=False)
            not_run = self.solve_status.error
            if words is None:  # the packets still show, without what the NF does to them
                words = self._explain(solution, outcome=False)
        with self.hold_trait_notifications():
            self.solution, self.solved = solution, now
            self.words = words or {}
        self.solution_view.label = now.label()
        self.solution_view.words = self.words
        self.solution_view.solution = data
        self.graph_view.words = self.words
        self.table.show(rows_from(self.analysis.to_dict(), data, self.words), self.table.devices)
        verdict = "correct" if data.get("valid", True) else "WRONG: see the two packets it splits"
        warned = data.get("warnings", ())
        state = ("warning" if warned else "done") if data.get("valid", True) else "error"
        self.solve_status.report(state, f"Solved in {seconds:.2f} s for {now.label()}: {data.get('strategy', '')}, "
                                        f"{verdict}" + (f"; {spread_warning(warned)}" if warned else "")
                                        + (f"; {Path(now.nf).name} could not be run on them: {not_run}" if not_run
                                           else ""))
        self.verify_panel.offer_wrong_build(not data.get("valid", True))
        self._refresh()

    def simulate(self, rebalance: bool = False) -> None:
        """Per-core load of the solution on the chosen traffic; with ``rebalance`` also a new RETA."""
        status = self.simulator.status
        refused = self.why_not("simulate")
        if refused:
            status.report("error", refused)
            return
        panel = self.simulator
        with self._traffic(status) as traffic:
            if traffic is None:
                return
            generated = isinstance(traffic, str)
            options = ({"packets": panel.packets.value, "flows": panel.flows.value, "seed": panel.seed.value,
                        **panel.params()} if generated else {})
            extra = {}
            if generated and accepts(self.engine.simulate, "chunk_packets"):  # chunks the bar can follow
                extra["chunk_packets"] = max(PROGRESS_CHUNK, panel.packets.value // 20)
            what = ("Simulating" + (" and rebalancing" if rebalance else "") + " " +
                    (f"{panel.packets.value:,} {traffic} packets" if generated else "the pcap files"))
            simulation = status.run(what, self.engine.simulate, self.solution, traffic=traffic, rebalance=rebalance,
                                    total=panel.packets.value if generated else None, done=self.solved.label(),
                                    final=False, **options, **extra)
            if simulation is None:
                return
            seconds = status.seconds
            data = simulation.to_dict()
            numbers = sorted({int(n) for e in data.get("violations", {}).get("examples", ()) for n in e.get("packets", ())})
            examples = {}
            if numbers and hasattr(self.engine, "packets_of"):
                examples = status.run("Reading the packets behind the violations", self.engine.packets_of, traffic,
                                      numbers, final=False, **options) or {}
            status.finish(what, self.solved.label(), seconds)
            if data.get("warnings"):
                status.report("warning", f"{status.message}; {spread_warning(data['warnings'])}")
            if self.capture_warnings:  # the simulation read them again, quietly
                status.report("warning", status.message + "".join(f"\nwarning: {w}" for w in self.capture_warnings))
        self.simulation = simulation
        self.made["simulate"] = self.solved
        with panel.hold_trait_notifications():
            panel.examples = {str(k): v for k, v in examples.items()}
            panel.simulation = data
        self._refresh()

    def generate(self) -> None:
        """Write the parallel project to the folder named in the Generate section."""
        status = self.project_view.status
        refused = self.why_not("generate")
        if refused:
            status.report("error", refused)
            return
        view = self.project_view
        if not view.folder.value.strip():
            status.report("error", "Name a folder to generate the project into.")
            return
        folder = where_folder(view.folder.value.strip(), self.loaded[0])
        question = self._overwrite_question(folder)
        if question and not view.confirm.value:
            view.ask(question)
            view.confirm.value = False
            status.report("error", f"{folder} {self._holds(folder)}: tick the box to write there anyway.")
            return
        force = bool(question) and view.confirm.value and self._keeps(folder)
        project = status.run(f"Generating into {folder}", self.engine.generate, self.solution, folder,
                             strategy=self.strategy.value, force=force, done=self.solved.label())
        if project is None:
            return
        self.project = project
        self.made["generate"] = self.solved
        view.ask(None)
        # A file nfx kept (the user's own, or one they edited) is not the project's: its new version
        # is NAME.new beside it, which the list, the viewer and the downloads show instead.
        kept = {str(name) for name in getattr(project, "kept", ())}
        view.show_files(folder, [f"{name}{NEW_SUFFIX}" if str(name) in kept else name for name in project.files])
        if kept:
            status.report("warning", f"{status.message}; kept your {', '.join(sorted(kept))}: the new versions are "
                                     + ", ".join(f"{name}{NEW_SUFFIX}" for name in sorted(kept)))
        self._refresh()

    def verify(self) -> None:
        """Run the parallel build against the sequential NF on the chosen traffic."""
        status = self.verify_panel.status
        refused = self.why_not("verify")
        if refused:
            status.report("error", refused)
            return
        panel = self.verify_panel
        extra = {"wrong_on_purpose": True} if panel.wrong_on_purpose.value else {}
        what = ("Building the wrong sharding on purpose, running it" if extra else "Building the parallel program, "
                "running it") + f" and the sequential NF on {panel.traffic.value} traffic, {plural(panel.cores.value, 'core')}"
        check = status.run(what, self.engine.check, self.solution, panel.traffic.value, cores=panel.cores.value,
                           packets=CHECK_PACKETS, flows=CHECK_FLOWS, done=self.solved.label(), final=False, **extra)
        if check is None:
            return
        seconds = status.seconds
        self.check = check
        self.made["verify"] = self.solved
        data = check.to_dict()
        missing = [int(d["packet"]) for d in data.get("differences", ()) if "src" not in d and "src_mac" not in d]
        if missing and hasattr(self.engine, "packets_of") and panel.traffic.value != PATHS:  # no headers: read them
            found = status.run("Reading the differing packets", self.engine.packets_of, panel.traffic.value, missing,
                               packets=CHECK_PACKETS, flows=CHECK_FLOWS, seed=0, final=False) or {}
            for d in data["differences"]:
                packet = found.get(int(d["packet"]))
                if packet and "src" not in d:
                    d.update(src=packet["src_ip"], dst=packet["dst_ip"], sport=packet["src_port"],
                             dport=packet["dst_port"], proto={"TCP": 6, "UDP": 17}.get(packet["protocol"]))
        panel.label = self.solved.label() + (" (built on purpose although wrong)" if extra else "")
        panel.check = data
        status.finish(what, self.solved.label(), seconds)
        self._refresh()

    # ---- helpers -------------------------------------------------------------------------------

    def _explain(self, result: Any, outcome: bool = True) -> Optional[dict[str, Any]]:
        """``pipeline.explain``; without ``outcome``, no run of the NF on a counterexample."""
        explain = getattr(self.engine, "explain", None)
        if explain is None:
            return {}
        return explain(result) if outcome or not accepts(explain, "outcome") else explain(result, outcome=False)

    def _overrides(self) -> dict[str, Any]:
        """The table's overrides as ``pipeline.solve`` takes them: fields per device, or a decision."""
        return {name: value if isinstance(value, str) else dict(value)
                for name, value in sorted(self.table.overrides.items())}

    def _kept_overrides(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        """The table's overrides that still apply when ``path`` is loaded again (a new define, an edit
        of the C file): those on objects it still has, on devices it still has. Another NF starts
        with none."""
        if self.loaded is None or self.loaded[0] != path:
            return {}
        names = {o["name"] for o in data.get("objects", ())}
        devices = int(data.get("devices", 2))
        return {name: value for name, value in self.table.overrides.items() if name in names
                and (isinstance(value, str) or all(0 <= int(d) < devices for d in value))}

    def _held(self, folder: Path) -> Optional[dict[str, Any]]:
        """The engine's summary of the project an earlier Generate wrote into ``folder`` (its NF and
        the files edited since), None when there is none."""
        project_in = getattr(self.engine, "project_in", None)
        return project_in(folder) if project_in is not None else None

    def _holds(self, folder: Path) -> str:
        """What is in ``folder`` that Generate would write over, in words ("" when nothing)."""
        held = self._held(folder)
        if held is not None:
            edited = held.get("edited") or []
            edits = f"your edits to {', '.join(edited)}" if edited else ""
            if held.get("nf") != self.analysis.to_dict()['nf']:
                return f"holds the {held['nf']} project" + (f" with {edits}" if edits else "")
            return f"holds {edits}" if edits else ""
        if folder.is_dir() and any(folder.iterdir()):
            return "holds files nfx did not write"
        return ""

    def _keeps(self, folder: Path) -> bool:
        """Whether Generate must be forced in ``folder``: it holds files nfx never overwrites (the
        user's own, or nfx's that the user edited), whose new versions then go beside them."""
        held = self._held(folder)
        return bool(held.get("edited")) if held is not None else folder.is_dir() and any(folder.iterdir())

    def _show_destination(self) -> None:
        """The line under the Folder box: the whole path Generate writes to and what is there."""
        text = self.project_view.folder.value.strip()
        if self.analysis is None or self.loaded is None or not text:
            self.project_view.show_where(None)
            return
        folder = where_folder(text, self.loaded[0])
        try:
            held, holds = self._held(folder), self._holds(folder)
        except (OSError, NfxError) as error:  # unreadable: Generate says the same
            self.project_view.show_where(folder, f" ({getattr(error, 'strerror', None) or error})")
            return
        if folder.exists() and not folder.is_dir():
            note = " (a file, not a folder: name another)"
        elif not folder.exists():
            note = " (a new folder)"
        elif held is not None and not holds:
            note = f" (replacing the {held.get('nf', '')} project an earlier Generate wrote there)"
        elif held is not None and holds.startswith("holds your edits"):
            note = f" ({holds}: kept, the new versions go beside them as NAME.new)"
        elif holds:
            note = f" ({holds}: Generate asks first, and never overwrites your files)"
        else:
            note = ""
        self.project_view.show_where(folder, note)

    def _overwrite_question(self, folder: Path) -> str:
        held = self._held(folder) or {}
        beside = ", ".join(f"{name}.new" for name in held.get("edited") or [])
        holds = self._holds(folder)
        if holds.startswith("holds the"):
            return (f"Replace the {held['nf']} project in {folder} with {self.analysis.to_dict()['nf']}'s"
                    + (f" (your edits are kept; the new versions go beside them as {beside})" if beside else ""))
        if holds.startswith("holds your edits"):
            return f"Keep your edits in {folder} and write the new versions beside them as {beside}"
        if holds:
            return (f"Write into {folder}, which nfx did not create (your files are kept; where one would be "
                    "replaced, the new version goes beside it as NAME.new)")
        return ""

    @contextlib.contextmanager
    def _traffic(self, status: StatusLine) -> Iterator[Any]:
        """The traffic kind, or ``{device: pcap path}`` of the uploaded captures (in a temporary folder
        that lives as long as the ``with``); None when a capture cannot be read. What reading them
        warned of (VLAN tags, runts, packets cut short) is kept in ``capture_warnings``."""
        uploads = self.simulator.uploaded()
        self.capture_warnings = []
        if not uploads:
            yield self.simulator.traffic.value
            return
        with tempfile.TemporaryDirectory(prefix="nfx-upload-") as folder:
            paths: dict[int, str] = {}
            try:
                for device, (name, data) in sorted(uploads.items()):
                    path = Path(folder) / f"dev{device}" / Path(name).name  # the user's name: examples cite it
                    path.parent.mkdir()
                    path.write_bytes(data)
                    paths[device] = str(path)
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", TrafficWarning)
                        read = status.run(f"Reading {name}", read_pcap, path, final=False)
                    said = [str(w.message) for w in caught if issubclass(w.category, TrafficWarning)]
                    self.capture_warnings += [w.replace(str(path), f"{Path(path).name} (device {device})")
                                              for w in said]
                    if read is None:
                        yield None
                        return
                yield paths
            finally:  # errors name the captures where they were written here, which the user never saw
                if status.state == "error":
                    for device, path in paths.items():
                        status.message = status.message.replace(path, f"{Path(path).name} (device {device})")

    def _clear_results(self) -> None:
        self.solution_view.solution, self.solution_view.words = {}, {}
        self.simulator.simulation, self.simulator.examples = {}, {}
        self.project_view.files = []
        self.verify_panel.check = {}
        self.verify_panel.offer_wrong_build(False)

    @traitlets.observe("focus")
    def _on_focus(self, _change: Any) -> None:
        self.source_view.focus = self.focus
        self.graph_view.focus = self.focus
        if self.focus.startswith("path ") and self.analysis is not None:
            self.table.focused = objects_of_path(self.analysis.to_dict(), int(self.focus.split()[1]))
        elif self.focus.startswith("object "):
            self.table.focused = [self.focus[len("object "):]]
        else:
            self.table.focused = []

    def _refresh(self) -> None:
        """Buttons, tooltips, stale marks and the context line, from the results and the controls."""
        reasons = {action: self.why_not(action) for action in ("solve", "simulate", "generate", "verify")}
        buttons = {"solve": [self.solve_button], "simulate": [self.simulator.run_button, self.simulator.rebalance_button],
                   "generate": [self.project_view.button], "verify": [self.verify_panel.button]}
        for action, widgets in buttons.items():
            for button in widgets:
                button.disabled = bool(reasons[action])
                button.tooltip = reasons[action] or None
        current = self.solved if self.solution is not None and self.solved == self.inputs() else None
        for name, view, status in (("simulate", self.simulator.body, self.simulator.status),
                                   ("generate", self.project_view.body, self.project_view.status),
                                   ("verify", self.verify_panel.body, self.verify_panel.status)):
            made = self.made.get(name)
            stale = made is not None and made != current
            (view.add_class if stale else view.remove_class)("nfx-stale")
            if stale:
                now = self.inputs()
                changed = ", ".join(made.changes(now)) if now else "the NF"
                status.report("stale", f"Out of date: shown for {made.label()}; {changed or 'the solution'} "
                                       "changed since. " + (reasons[name] or "Run it again."))
            elif made is None and status.state in ("idle", "stale"):
                status.report("idle", reasons[name] or status.hint)
        self.table.reset_button.disabled = self.table.busy or not self.table.overrides
        solution_stale = self.solution is not None and self.solved != self.inputs()
        for part in (self.solution_view.head, self.solution_view.rss):
            (part.add_class if solution_stale else part.remove_class)("nfx-stale")
        self.context.value = self._context_html(solution_stale, reasons["solve"])
        self._show_destination()

    def _context_html(self, solution_stale: bool, pending: str) -> str:
        if self.analysis is None:
            return ""
        path, _ = self.loaded
        data = self.analysis.to_dict()
        parts = [f"<b>{Path(path).name}</b>: {paths_text(data)}, "
                 f"{plural(len(data['objects']), 'state object')}, analysed in {self.analysed_seconds:.2f} s"]
        if self.solution is not None:
            solved = self.solution.to_dict()
            parts.append(f"solution for <b>{self.solved.label()}</b>: {solved.get('strategy', '')}"
                         + ("" if solved.get("valid", True) else " (wrong: an override splits state)"))
        note = pending or ("the controls changed since this solution: " + ", ".join(self.solved.changes(self.inputs()))
                           if solution_stale and self.solved else "")
        if note:
            parts.append(f'<span class="nfx-stale-note">{note}</span>')
        return " \u00b7 ".join(parts)
