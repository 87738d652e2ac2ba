"""The simulator section: traffic (a seeded generator, or one pcap per device), the Simulate and
Rebalance buttons with their status, the load charts, the traffic the plan could not spread (the
report's warnings), and what went wrong as packets: state reached from several cores (shared-nothing
plans) or the write-lock share (locks plans)."""
from __future__ import annotations

import html
import os
from typing import Any, Mapping, Optional, Sequence

import ipywidgets
import traitlets

from explorer.commands.explore import UPLOAD_LIMIT_VARIABLE
from explorer.simulate.verdict import split_flows, unchecked_text
from explorer.traffic.generators import GENERATORS
from widgets.load_view import LoadView
from widgets.solution_view import warnings_html
from widgets.status import StatusLine

TRAFFIC_KINDS = tuple(GENERATORS)  # the engine's seeded generators, "uniform" first
UPLOADED = "pcap files"
TORNADO_MESSAGE_LIMIT = 10 * 1024 * 1024  # the websocket cap of a server nfx explore did not configure


def upload_limit() -> int:
    """The largest capture the page can upload: an upload reaches the kernel as one websocket
    message, and a larger one is dropped with the connection, unseen by the kernel (so the page
    says the limit beforehand). ``nfx explore`` raises the server's cap and says so in the environment."""
    try:
        return int(os.environ.get(UPLOAD_LIMIT_VARIABLE, TORNADO_MESSAGE_LIMIT))
    except ValueError:
        return TORNADO_MESSAGE_LIMIT


def unchecked_html(unchecked: Sequence[str]) -> str:
    """Accesses whose keys depend on more than the packet (state values, time): not checked."""
    if not unchecked:
        return ""
    items = "".join(f"<li><code>{html.escape(u)}</code></li>" for u in unchecked)
    return (f'<details class="nfx-unchecked" style="color:#57606a;font-size:12px"><summary>{len(unchecked)} '
            "accesses have keys the packet alone does not give, so the simulator could not check them</summary>"
            f"<ul>{items}</ul></details>")


def packet_text(p: Optional[Mapping[str, Any]]) -> str:
    """``10.0.0.1:5000 -> 1.2.3.4:443 TCP`` (what is known of it)."""
    if not p:
        return "?"
    if not p.get("src_ip"):
        return "not IPv4"
    ports = p.get("src_port") is not None
    return (f"{p['src_ip']}{':' + str(p['src_port']) if ports else ''} -> "
            f"{p['dst_ip']}{':' + str(p['dst_port']) if ports else ''} {p.get('protocol', '')}").strip()


def arrival(p: Optional[Mapping[str, Any]]) -> str:
    """``device 0``, and where the packet is in its capture when it came from one (``device 0,
    frame 7 of lan.pcap``): the trace's packet number mixes the devices' captures."""
    if not p:
        return "?"
    frame = f", frame {p['frame']} of {p['capture']}" if p.get("frame") else ""
    return f"device {p['device']}{frame}"


def violations_html(violations: Mapping[str, Any], packets: Mapping[int, Mapping[str, Any]],
                    unchecked: Sequence[Mapping[str, Any]] = (), split: int = 0) -> str:
    """State entries packets reached from several cores, each as the packets that did so; with
    ``unchecked`` (``Unchecked.to_dict``), the objects the count does not cover, in the same sentence
    (a green "no violations" over an unchecked NAT table hid a plan that splits every flow). ``split``:
    how many of the count are flows whose replies reached another core than their allocation."""
    count = int(violations.get("count", 0))
    missed = unchecked_text(unchecked)
    if count == 0 and missed:
        return ('<div class="nfx-violations nfx-unverified" style="color:#9a6700">No sharding violations <b>among the '
                f"checked objects</b>, which is not all of them: {html.escape(missed)}.</div>")
    if count == 0:
        return ('<div class="nfx-violations nfx-ok" style="color:#1a7f37">No sharding violations: every packet '
                "that shares state with another reached the same core.</div>")
    rows = []
    for example in violations.get("examples", ()):
        key = example.get("key_text") or example.get("key", "")  # the engine's fields text, else the bytes
        for core, number in zip(example.get("cores", ()), example.get("packets", ())):
            p = packets.get(int(number))
            rows.append(f"<tr><td><code>{html.escape(str(example.get('object', '')))}</code></td>"
                        f"<td>{int(number):,}</td><td>{html.escape(arrival(p))}</td>"
                        f'<td><code style="white-space:nowrap">{html.escape(packet_text(p))}</code></td>'
                        f"<td>core {int(core)}</td>"
                        f'<td style="font-size:11px;color:#57606a"><code>{html.escape(str(key))}</code>'
                        "</td></tr>")
    cell = 'style="text-align:left;padding:2px 10px"'
    among = f" ({html.escape(missed)}: they may split too)" if missed else ""
    what = [f"{count - split:,} state entries were reached from more than one core"] if count > split else []
    what += [f"{split:,} flow{'' if split == 1 else 's'} whose replies reached another core than the one that "
             "allocated their value"] if split else []
    return (f'<div class="nfx-violations nfx-bad" style="color:#b42318"><b>{", and ".join(what)}</b>'
            f"{' among the checked objects' if missed else ''}: each core keeps its own copy, so the NF's state "
            f"splits{among}. The first packets to reach each entry on each core:</div>"
            # Cells get the headers' padding: without it the packet ran into its core ("TCPcore 1").
            '<style>.nfx-violation-packets td{padding:2px 10px;vertical-align:top}</style>'
            f'<table class="nfx-violation-packets" style="font-size:12px;border-collapse:collapse">'
            f"<tr><th {cell}>object</th><th {cell}>packet #</th><th {cell}>arrives on</th><th {cell}>packet</th>"
            f"<th {cell}>core</th><th {cell}>entry (key)</th></tr>{''.join(rows)}</table>")


def write_shares_html(shares: Mapping[str, float]) -> str:
    """For replicated objects that packets write: how often a write is broadcast to every core."""
    if not shares:
        return ""
    items = ", ".join(f"<code>{html.escape(name)}</code> {share:.1%}" for name, share in sorted(shares.items()))
    return (f'<div class="nfx-write-shares">Replicated on every core and written by rare packets, which broadcast each '
            f"write to the other cores; share of packets that write: {items}.</div>")


def contention_html(contention: Mapping[str, Any], packets: int) -> str:
    """For locks and tm plans: the shared state and how many packets take the write lock."""
    writes, share = int(contention.get("writes", 0)), float(contention.get("share", 0.0))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in contention.get("notes", ()))
    cells = int(contention.get("cells", 0))
    cell_text = (f"; <b>{cells / packets:.1%}</b> ({cells:,}) may change only cells of vectors (a bucket, a counter), "
                 "which they write under per-cell locks, side by side, waiting only for a core that uses the same "
                 "cells" if cells and packets else "")
    return (f'<div class="nfx-contention">The state is shared by all cores behind one lock, so no entry can split. '
            f"<b>{share:.1%}</b> of the packets ({writes:,} of {packets:,}) change it and take the write lock, "
            f"during which every other core waits{cell_text}; the rest read it side by side."
            + (f'<ul style="font-size:12px;color:#57606a">{notes}</ul>' if notes else "") + "</div>")


def pools_html(pools: Sequence[Mapping[str, Any]]) -> str:
    """Per-core allocators: the replies addressed to what each flow's core allocated and how many
    reached another core, indices per core, used-up pools. Sharding by allocation gives per-core
    pools; a plan that is not gives each core its own allocator from index 0 (``pooled`` false)."""
    rows = []
    for p in pools:
        name = html.escape(p["allocator"])
        pooled = p.get("pooled", True)
        allocated = ", ".join(f"{a:,}/{s:,}" for a, s in zip(p["allocated"], p["sizes"]))
        used_up = (f'; <b style="color:#b42318">{p["exhausted"]:,} new flows found their core\'s '
                   f'{"pool" if pooled else "share"} used up</b>' if p["exhausted"] else "")
        stray, flows = int(p.get("stray", p["violations"])), int(p["violations"])
        objects = html.escape(", ".join(p.get("objects", ())) or "its state")
        # The examples above show a reply as the traffic carries it (what packets_of reads back), not
        # readdressed to the value its flow's core allocated, which their key column gives.
        reached = (f'<b style="color:#b42318">{stray:,} reached another core</b>, whose {objects} has no entry for '
                   f"them ({flows:,} flow{'' if flows == 1 else 's'} split; above, each such flow's first packet and "
                   f"first reply elsewhere, the reply as the traffic carries it, before the simulator gave it "
                   f"{html.escape(p.get('field') or 'the value')} of the entry (key))"
                   if stray else "0 reached another core")
        replies = f"{p['replies']:,} replies addressed to the value their flow's core allocated, {reached}{used_up}"
        if pooled:
            rows.append(f"<div>Pools of <code>{name}</code>: {replies}. Allocated / pool per core: {allocated}.</div>")
        else:
            carried = (f" (replies carry <code>{html.escape(p['field'])} = {html.escape(p['formula'])}</code>)"
                       if p.get("field") else "")
            rows.append(f"<div><code>{name}</code> is not sharded by allocation: each core's own <code>{name}</code> "
                        f"hands out its indices from 0{carried}. {replies}. Allocated / share per core: "
                        f"{allocated}.</div>")
    return f'<div class="nfx-pools" style="font-size:12px">{"".join(rows)}</div>' if rows else ""


class SimulatorPanel(ipywidgets.VBox):
    """``simulation`` is the last ``Simulation.to_dict()`` shown and ``examples`` the packets its
    violation examples name (``{packet number: fields}``); ``devices`` is how many pcap uploads to offer."""

    simulation = traitlets.Dict()
    examples = traitlets.Dict()
    devices = traitlets.Int(2, min=1)

    def __init__(self, **kwargs: Any) -> None:
        narrow = {"description_width": "56px"}
        self.traffic = ipywidgets.Dropdown(options=list(TRAFFIC_KINDS), value="uniform", description="Traffic",
                                           style=narrow, layout=ipywidgets.Layout(width="190px"))
        self.packets = ipywidgets.BoundedIntText(100_000, min=1, max=10_000_000, description="Packets",
                                                 style=narrow, layout=ipywidgets.Layout(width="170px"))
        self.flows = ipywidgets.BoundedIntText(10_000, min=1, max=10_000_000, description="Flows",
                                               style=narrow, layout=ipywidgets.Layout(width="160px"))
        self.seed = ipywidgets.BoundedIntText(0, min=0, max=2**32 - 1, description="Seed", style=narrow,
                                              layout=ipywidgets.Layout(width="130px"))
        self.servers = ipywidgets.Text("", placeholder="e.g. 172.16.0.10/32", description="Servers", style=narrow,
                                       tooltip="prefix traffic: the servers' prefix (one address: one server)",
                                       layout=ipywidgets.Layout(width="220px"))
        self.run_button = ipywidgets.Button(description="Simulate", button_style="primary")
        self.rebalance_button = ipywidgets.Button(description="Rebalance")
        self.status = StatusLine("Simulate the NIC spreading seeded traffic over the cores.")
        self.uploads: list[ipywidgets.FileUpload] = []
        self.clear_button = ipywidgets.Button(description="Use generated traffic", layout=ipywidgets.Layout(
            width="auto", display="none"), tooltip="forget the pcap files")
        self._uploads_box = ipywidgets.HBox(layout=ipywidgets.Layout(flex_flow="row wrap", align_items="center"))
        self.load = LoadView()
        self._findings = ipywidgets.HTML()
        self.toolbar = ipywidgets.VBox([
            ipywidgets.HBox([self.traffic, self.packets, self.flows, self.seed, self.servers, self.run_button,
                             self.rebalance_button], layout=ipywidgets.Layout(flex_flow="row wrap")),
            self._uploads_box, self.status])
        self.toolbar.add_class("nfx-toolbar")
        self.body = ipywidgets.VBox([self.load, self._findings], layout=ipywidgets.Layout(width="100%"))
        super().__init__([self.toolbar, self.body], **kwargs)
        self.add_class("nfx-simulator")
        self.clear_button.on_click(lambda _b: self.clear_uploads())
        self._build_uploads()
        self._render()

    # ---- traffic ----------------------------------------------------------------------------

    @traitlets.observe("devices")
    def _on_devices(self, _change: Any) -> None:
        self._build_uploads()

    def _build_uploads(self) -> None:
        self.uploads = [ipywidgets.FileUpload(accept=".pcap,.pcapng", multiple=False,
                                              description=f"pcap for device {d}",
                                              layout=ipywidgets.Layout(width="auto"))
                        for d in range(self.devices)]
        for upload in self.uploads:
            upload.observe(lambda _change: self._on_upload(), "value")
        hint = ipywidgets.HTML(f"<span class='nfx-upload-hint' style='font-size:12px;color:#57606a'>or upload "
                               f"captures (each up to {upload_limit() // 2**20} MB; larger: nfx simulate --in):"
                               "&nbsp;</span>")
        self._uploads_box.children = [hint, *self.uploads, self.clear_button]
        self._on_upload()

    def params(self) -> dict[str, str]:
        """Generator parameters the panel sets: the servers of prefix traffic."""
        servers = self.servers.value.strip()
        return {"server_prefix": servers} if servers and self.traffic.value == "prefix" else {}

    def uploaded(self) -> dict[int, tuple[str, bytes]]:
        """``{device: (file name, bytes)}`` of the captures in use (empty: generated traffic)."""
        if self.traffic.value != UPLOADED:
            return {}
        return {device: (upload.value[0]["name"], bytes(upload.value[0]["content"]))
                for device, upload in enumerate(self.uploads) if upload.value}

    def clear_uploads(self) -> None:
        for upload in self.uploads:
            upload.value = ()
        self._on_upload()

    def _on_upload(self) -> None:
        using = any(upload.value for upload in self.uploads)
        self.traffic.options = list(TRAFFIC_KINDS) + ([UPLOADED] if using else [])
        self.traffic.value = UPLOADED if using else TRAFFIC_KINDS[0]
        self.traffic.disabled = using
        why = "read from the pcap files" if using else ""
        for control, what in ((self.packets, "packet count"), (self.flows, "flow count"), (self.seed, "seed"),
                              (self.servers, "servers' prefix")):
            control.disabled = using
            control.tooltip = f"the {what} is {why}" if using else None
        self.clear_button.layout.display = "flex" if using else "none"

    # ---- results ----------------------------------------------------------------------------

    @traitlets.observe("simulation", "examples")
    def _on_simulation(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self.load.simulation = self.simulation
        sim = self.simulation
        if not sim:
            self._findings.value = ""
            return
        if sim.get("contention"):  # locks, tm: nothing is replicated, so no broadcast writes to show
            found = contention_html(sim["contention"], int(sim.get("packets", sum(sim.get("per_core", ())))))
        else:
            found = (violations_html(sim.get("violations", {}), {int(k): v for k, v in self.examples.items()},
                                     sim.get("unchecked_objects", ()), split_flows(sim))
                     + write_shares_html(sim.get("write_shares") or {}))
        self._findings.value = (warnings_html(sim.get("warnings", ())) + found +
                                unchecked_html(sim.get("unchecked", ())) + pools_html(sim.get("pools", ())))
