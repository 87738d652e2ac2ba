"""The simulator panel: traffic choice (a generator or an uploaded pcap), the load charts, the
sharding violations found, and the Simulate / Rebalance buttons (the app wires them to the engine)."""
from __future__ import annotations

import html
from typing import Any, Mapping, Optional, Sequence

import ipywidgets
import traitlets

from explorer.traffic.generators import GENERATORS
from widgets.load_view import LoadView

TRAFFIC_KINDS = tuple(GENERATORS)  # the engine's seeded generators, "uniform" first
UPLOADED = "uploaded pcap"


def unchecked_html(unchecked: Sequence[str]) -> str:
    """Accesses whose keys depend on more than the packet (state values, time): not checked."""
    if not unchecked:
        return ""
    items = "".join(f"<li><code>{html.escape(u)}</code></li>" for u in unchecked)
    return (f'<div class="nfx-unchecked" style="color:#57606a;font-size:12px">{len(unchecked)} accesses '
            f"have keys the packet alone does not give, so the simulator could not check them:<ul>{items}</ul></div>")


def violations_html(violations: Mapping[str, Any]) -> str:
    count = int(violations.get("count", 0))
    if count == 0:
        return ('<div class="nfx-violations" style="color:#1a7f37">\u2714 No sharding violations: every '
                "packet that shares state with another reached the same core.</div>")
    rows = "".join(
        f"<tr><td><code>{html.escape(str(e.get('object', '')))}</code></td>"
        f"<td><code>{html.escape(str(e.get('key', '')))}</code></td>"
        f"<td>{html.escape(', '.join(str(c) for c in e.get('cores', ())))}</td>"
        f"<td>{html.escape(', '.join(str(p) for p in e.get('packets', ())))}</td></tr>"
        for e in violations.get("examples", ()))
    return (f'<div class="nfx-violations" style="color:#b42318"><b>\u2716 {count:,} sharding violations</b>: '
            "state reached from more than one core.</div>"
            '<table style="font-size:12px;border-collapse:collapse"><tr><th>object</th><th>key</th>'
            f"<th>cores</th><th>packets</th></tr>{rows}</table>")


class SimulatorPanel(ipywidgets.VBox):
    """``simulation`` is the last ``Simulation.to_dict()`` shown."""

    simulation = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        narrow = {"description_width": "60px"}
        self.traffic = ipywidgets.Dropdown(options=list(TRAFFIC_KINDS), value="uniform", description="Traffic",
                                           style=narrow, layout=ipywidgets.Layout(width="220px"))
        self.packets = ipywidgets.BoundedIntText(100_000, min=1, max=10_000_000, description="Packets",
                                                 style=narrow, layout=ipywidgets.Layout(width="180px"))
        self.flows = ipywidgets.BoundedIntText(10_000, min=1, max=10_000_000, description="Flows",
                                               style=narrow, layout=ipywidgets.Layout(width="170px"))
        self.seed = ipywidgets.IntText(0, description="Seed", style=narrow, layout=ipywidgets.Layout(width="120px"))
        self.upload = ipywidgets.FileUpload(accept=".pcap,.pcapng", multiple=False, description="pcap")
        self.upload_device = ipywidgets.BoundedIntText(0, min=0, max=0xFFFF, description="on device",
                                                       style={"description_width": "70px"},
                                                       layout=ipywidgets.Layout(width="140px"))
        self.run_button = ipywidgets.Button(description="Simulate", icon="play", button_style="primary")
        self.rebalance_button = ipywidgets.Button(description="Rebalance", icon="balance-scale",
                                                  tooltip="simulate again, then rebalance the RETA from the measured load")
        self.load = LoadView()
        self._violations = ipywidgets.HTML()
        super().__init__([
            ipywidgets.HBox([self.traffic, self.packets, self.flows, self.seed]),
            ipywidgets.HBox([self.upload, self.upload_device, self.run_button, self.rebalance_button]),
            self.load, self._violations], **kwargs)
        self.add_class("nfx-simulator")
        self.upload.observe(self._on_upload, "value")
        self._render()

    def uploaded(self) -> Optional[tuple[str, bytes, int]]:
        """The uploaded pcap's name, bytes and receiving device, when the traffic choice is the upload."""
        if self.traffic.value != UPLOADED or not self.upload.value:
            return None
        upload = self.upload.value[0]
        return upload["name"], bytes(upload["content"]), self.upload_device.value

    def _on_upload(self, _change: Any) -> None:
        kinds = list(TRAFFIC_KINDS) + ([UPLOADED] if self.upload.value else [])
        self.traffic.options = kinds
        self.traffic.value = UPLOADED if self.upload.value else TRAFFIC_KINDS[0]

    @traitlets.observe("simulation")
    def _on_simulation(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self.load.simulation = self.simulation
        sim = self.simulation
        self._violations.value = (violations_html(sim["violations"]) + unchecked_html(sim.get("unchecked", ()))
                                  if sim else "")
