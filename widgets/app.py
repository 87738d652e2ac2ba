"""The explorer: one page composing the views, wired to the engine's pipeline.

Every action is one engine call made under the status bar (which shows progress and any
``NfxError``) followed by view updates from the result's ``to_dict()``; the views never see Z3
terms or parse trees, and no analysis happens here. The engine is a parameter so tests can hand in
a fake one; by default it is ``explorer.pipeline``.
"""
from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import ipywidgets
import traitlets

from explorer.traffic.pcap import read_pcap
from explorer.traffic.trace import Trace
from widgets.graph_view import NOTHING, GraphView, highlight_choices
from widgets.nf_picker import SAMPLES_DIR, NfPicker
from widgets.project_view import ProjectView
from widgets.sharding_table import ShardingTable, rows_from_analysis, rows_from_solution
from widgets.simulator import SimulatorPanel
from widgets.solution_view import SolutionView
from widgets.source_view import ALL_PATHS, SourceView
from widgets.status import StatusBar
from widgets.verify_view import VerifyPanel

NIC_PROFILES = ("e810", "x710", "cx5", "82599")
STRATEGIES = ("auto", "sn", "locks", "tm")

_PAGE_CSS = """<style>
.nfx-app h3 { margin: 14px 0 4px 0; border-bottom: 1px solid #d0d7de; font-size: 15px; }
.nfx-app .nfx-status { position: sticky; top: 0; z-index: 10; background: white;
                       border-bottom: 1px solid #d0d7de; min-height: 28px; }
.nfx-app .nfx-field button, .nfx-app button.nfx-field { font-size: 11px; padding: 0 2px; }
</style>"""


def _section(title: str) -> ipywidgets.HTML:
    return ipywidgets.HTML(f"<h3>{title}</h3>")


class ExplorerApp(ipywidgets.VBox):
    """The whole explorer on one NF. ``analysis`` / ``solution`` / ``simulation`` / ``project`` /
    ``check`` hold the engine's last results (None until produced)."""

    analysis = traitlets.Any(None, allow_none=True)
    solution = traitlets.Any(None, allow_none=True)
    simulation = traitlets.Any(None, allow_none=True)
    project = traitlets.Any(None, allow_none=True)
    check = traitlets.Any(None, allow_none=True)

    def __init__(self, nf_path: str = "", *, engine: Optional[ModuleType] = None,
                 samples_dir: Path = SAMPLES_DIR, out_dir: str = "", **kwargs: Any) -> None:
        self.engine = engine if engine is not None else importlib.import_module("explorer.pipeline")
        self.picker = NfPicker(nf_path, samples_dir)
        self.status = StatusBar()
        self.source_view = SourceView()
        self.graph_view = GraphView()
        self.table = ShardingTable()
        self.nic = ipywidgets.Dropdown(options=list(NIC_PROFILES), value="e810", description="NIC",
                                       style={"description_width": "40px"}, layout=ipywidgets.Layout(width="150px"))
        self.cores = ipywidgets.IntSlider(16, min=1, max=64, description="Cores",
                                          style={"description_width": "50px"})
        self.strategy = ipywidgets.Dropdown(options=list(STRATEGIES), value="auto", description="Strategy",
                                            style={"description_width": "60px"},
                                            layout=ipywidgets.Layout(width="170px"))
        self.seed = ipywidgets.IntText(0, description="Seed", style={"description_width": "40px"},
                                       layout=ipywidgets.Layout(width="110px"))
        self.solve_button = ipywidgets.Button(description="Solve", icon="key", button_style="primary")
        self.solution_view = SolutionView()
        self.simulator = SimulatorPanel()
        self.project_view = ProjectView(default_folder=out_dir)
        self.verify_panel = VerifyPanel()
        super().__init__([
            ipywidgets.HTML(_PAGE_CSS + "<h2 style='margin:4px 0'>nf-explorer</h2>"),
            self.picker, self.status,
            _section("Source and state accesses"), self.source_view,
            _section("State-access graph"), self.graph_view,
            _section("Sharding"), self.table,
            _section("RSS"), ipywidgets.HBox([self.nic, self.cores, self.strategy, self.seed, self.solve_button]),
            self.solution_view,
            _section("Simulator"), self.simulator,
            _section("Generate"), self.project_view,
            _section("Verify"), self.verify_panel,
        ], **kwargs)
        self.add_class("nfx-app")
        self.picker.button.on_click(lambda _b: self.load())
        self.solve_button.on_click(lambda _b: self.solve())
        self.simulator.run_button.on_click(lambda _b: self.simulate())
        self.simulator.rebalance_button.on_click(lambda _b: self.simulate(rebalance=True))
        self.project_view.button.on_click(lambda _b: self.generate())
        self.verify_panel.button.on_click(lambda _b: self.verify())
        self.source_view.observe(lambda _c: self._emphasise_path(), "selected_path")
        self.graph_view.observe(lambda _c: self._draw_graph(), "highlight")
        self._enable()
        if nf_path:
            self.load()

    # ---- actions (the buttons call these; notebooks and tests may too) ---------------------

    def load(self) -> None:
        """Analyse the NF the picker names, then show its source, graph and objects."""
        choice = self.status.run("Reading the NF choice", self.picker.commit)
        if choice is None:
            return
        path, defines = choice
        analysis = self.status.run(f"Analysing {path}", self.engine.analyze, path, defines=defines)
        if analysis is None:
            return
        data = analysis.to_dict()
        seconds = self.status.seconds
        self.analysis = analysis
        self._show_solution(None)
        text = Path(data["source"]).read_text(encoding="utf-8", errors="replace")
        self.source_view.show(data, text)
        self.table.reset_overrides()
        self.table.show(rows_from_analysis(data), data["devices"])
        redrawn = self.graph_view.highlight != NOTHING  # resetting it redraws through the observer
        self.graph_view.set_choices(highlight_choices(data))
        if not redrawn:
            self._draw_graph()
        if self.status.state != "error":
            self.status.report("done", f"Loaded {Path(path).name}: {len(data['paths'])} call paths, "
                                       f"{len(data['objects'])} state objects (analysed in {seconds:.2f} s)")

    def solve(self) -> None:
        """Solve RSS keys for the loaded NF with the chosen NIC, cores, strategy and overrides."""
        if self.analysis is None:
            return
        # The loaded analysis, not the path: the NF is not analysed again for every solve.
        solution = self.status.run(
            f"Solving RSS keys for {self.cores.value} cores on {self.nic.value}", self.engine.solve,
            self.analysis, nic=self.nic.value, cores=self.cores.value, seed=self.seed.value,
            overrides=self._overrides(), strategy=self.strategy.value)
        if solution is None:
            return
        self._show_solution(solution)
        self.table.show(rows_from_solution(self.solution_view.solution), self.table.devices)

    def simulate(self, rebalance: bool = False) -> None:
        """Per-core load of the solution on the chosen traffic; with ``rebalance`` also a new RETA."""
        if self.solution is None:
            return
        traffic = self._traffic()
        if traffic is None:
            return
        panel = self.simulator
        simulation = self.status.run(
            "Simulating" + (" and rebalancing" if rebalance else ""), self.engine.simulate, self.solution,
            traffic=traffic, packets=panel.packets.value, flows=panel.flows.value, seed=panel.seed.value,
            rebalance=rebalance)
        if simulation is None:
            return
        self.simulation = simulation
        panel.simulation = simulation.to_dict()

    def generate(self) -> None:
        """Write the parallel project to the folder named in the Generate section."""
        if self.solution is None:
            return
        folder = self.project_view.folder.value.strip()
        if not folder:
            self.status.report("error", "Name a folder to generate the project into.")
            return
        project = self.status.run(f"Generating into {folder}", self.engine.generate, self.solution, Path(folder),
                                  strategy=self.strategy.value, force=self.project_view.overwrite.value)
        if project is None:
            return
        self.project = project
        self.project_view.show_files(Path(folder), project.files)

    def verify(self) -> None:
        """Run the parallel build against the sequential NF on the chosen traffic."""
        if self.solution is None:
            return
        check = self.status.run("Checking the parallel build against the sequential NF", self.engine.check,
                                self.solution, self.verify_panel.traffic.value, cores=self.verify_panel.cores.value)
        if check is None:
            return
        self.check = check
        self.verify_panel.check = check.to_dict()

    # ---- helpers -------------------------------------------------------------------------

    def _show_solution(self, solution: Optional[Any]) -> None:
        """Show a new solution (None: none yet); what was computed from the previous one is dropped."""
        with self.hold_trait_notifications():
            self.solution, self.simulation, self.project, self.check = solution, None, None, None
        self.solution_view.solution = solution.to_dict() if solution is not None else {}
        self.simulator.simulation = {}
        self.project_view.files = []
        self.verify_panel.check = {}

    @traitlets.observe("analysis", "solution")
    def _on_results(self, _change: Any) -> None:
        self._enable()

    def _enable(self) -> None:
        """Buttons that need a result stay disabled until there is one."""
        self.solve_button.disabled = self.analysis is None
        for button in (self.simulator.run_button, self.simulator.rebalance_button,
                       self.project_view.button, self.verify_panel.button):
            button.disabled = self.solution is None

    def _overrides(self) -> dict[str, dict[int, tuple[str, ...]]]:
        return {name: dict(per_device) for name, per_device in sorted(self.table.overrides.items())}

    def _emphasise_path(self) -> None:
        selected = self.source_view.selected_path
        self.graph_view.highlight = NOTHING if selected == ALL_PATHS else f"path {selected}"

    def _draw_graph(self) -> None:
        if self.analysis is None:
            self.graph_view.dot = ""
            return
        highlight = self.graph_view.highlight or None
        dot = self.status.run("Drawing the state-access graph", self.engine.graph, self.analysis,
                              highlight=highlight)
        if dot is not None:
            self.graph_view.dot = dot

    def _traffic(self) -> Optional[Any]:
        """The traffic kind, or a Trace read from the uploaded pcap (None when it cannot be read)."""
        upload = self.simulator.uploaded()
        if upload is None:
            return self.simulator.traffic.value
        name, data, device = upload
        with tempfile.TemporaryDirectory(prefix="nfx-upload-") as folder:
            path = Path(folder) / Path(name).name
            path.write_bytes(data)
            packets = self.status.run(f"Reading {name}", read_pcap, path)
        return None if packets is None else Trace.merge({device: packets})
