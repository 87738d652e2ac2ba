"""The state-access graph: its nodes and edges, determinism, highlighting, and that dot renders it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.errors import ConfigError
from explorer.graph import access_graph
from explorer.symbex import analyze

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "tests" / "nfs_analysis" / "fw_small.c"
HIGHLIGHT = "#d62728"


def statements(dot: str) -> dict[str, str]:
    """``{'"a" -> "b"': attrs, '"node"': attrs}`` from our DOT (one statement per line); parallel
    edges get their attributes joined with " | "."""
    out: dict[str, str] = {}
    for line in dot.splitlines():
        line = line.strip()
        if not line.endswith("];") or line.startswith(("graph ", "node ", "edge ")):
            continue
        head, _, attrs = line.partition(" [")
        out[head] = out[head] + " | " + attrs[:-2] if head in out else attrs[:-2]
    return out


@pytest.fixture(scope="module")
def fw_dot() -> str:
    return access_graph(analyze(FW))


def test_objects_fields_devices_and_verdicts_are_nodes(fw_dot: str) -> None:
    nodes = statements(fw_dot)
    assert fw_dot.startswith('digraph "fw_small" {') and fw_dot.endswith("}\n")
    assert "shape=cylinder" in nodes['"obj:flows"'] and "map, 1024" in nodes['"obj:flows"']
    assert "shape=box3d" in nodes['"obj:keys"'] and "shape=component" in nodes['"obj:chain"']
    for field in ("p.ipv4.src", "p.ipv4.dst", "p.l4.sport", "p.l4.dport", "p.ipv4.proto"):
        assert f'"field:{field}"' in nodes
    assert '"field:p.ether.type"' not in nodes  # tested, but in no key
    assert 'label="device 0\\n5 paths"' in nodes['"dev:0"'] and 'label="device 1\\n4 paths"' in nodes['"dev:1"']
    assert {k for k in nodes if k.startswith('"verdict:')} == {'"verdict:drop"', '"verdict:forward:0"',
                                                               '"verdict:forward:1"'}


def test_edges_say_what_reads_writes_and_indexes_what(fw_dot: str) -> None:
    edges = statements(fw_dot)
    assert edges['"field:p.ipv4.src" -> "obj:flows"'] == 'label="keyed by (dev 0, 1)", style=dashed'
    assert edges['"obj:flows" -> "obj:chain"'] == 'label="index of (dev 0, 1; 2 paths)", style=bold'
    assert edges['"obj:chain" -> "obj:keys"'] == 'label="index of (dev 0; 1 path)", style=bold'
    assert edges['"dev:0" -> "obj:flows"'] == ('label="reads\\nREAD x3\\n3 paths" | '
                                              'label="writes\\nWRITE x1\\n1 path", color="#1f4e99"')
    assert edges['"dev:0" -> "obj:chain"'] == 'label="writes\\nCREATE x2, EXPIRE x5, UPDATE x1\\n5 paths", color="#1f4e99"'
    assert edges['"dev:1" -> "obj:flows"'] == 'label="reads\\nREAD x2\\n2 paths"'
    assert '"dev:1" -> "obj:keys"' not in edges
    assert edges['"dev:1" -> "verdict:drop"'] == 'label="3 paths", color=gray40'
    assert edges['"dev:1" -> "verdict:forward:0"'] == 'label="1 path", color=gray40'


def test_the_dot_text_is_deterministic(fw_dot: str) -> None:
    assert access_graph(analyze(FW)) == fw_dot
    keyed = [ln for ln in fw_dot.splitlines() if "keyed by" in ln]
    assert keyed == sorted(keyed)


def test_highlight_an_object(fw_dot: str) -> None:
    dot = access_graph(analyze(FW), highlight="keys")
    nodes = statements(dot)
    assert HIGHLIGHT in nodes['"obj:keys"'] and HIGHLIGHT not in nodes['"obj:flows"']
    assert HIGHLIGHT in nodes['"obj:chain" -> "obj:keys"'] and HIGHLIGHT not in nodes['"obj:flows" -> "obj:chain"']
    assert HIGHLIGHT not in fw_dot


def test_highlight_a_path() -> None:
    analysis = analyze(FW)
    dot = access_graph(analysis, highlight="path 2")  # WAN, flow not found: drop
    nodes = statements(dot)
    assert HIGHLIGHT in nodes['"dev:1"'] and HIGHLIGHT not in nodes['"dev:0"']
    assert HIGHLIGHT in nodes['"obj:flows"'] and HIGHLIGHT in nodes['"verdict:drop"']
    assert HIGHLIGHT not in nodes['"obj:keys"']
    assert access_graph(analysis, highlight="#2") == dot == access_graph(analysis, highlight="path:2")


@pytest.mark.parametrize("bad", ["nothing", "path 99"])
def test_highlighting_something_unknown_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="cannot highlight"):
        access_graph(analyze(FW), highlight=bad)


def test_labels_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / 'q"uote.c'
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) { return 0; }\n")
    dot = access_graph(analyze(path))
    assert dot.startswith('digraph "q\\"uote" {')


def test_the_engine_does_not_import_a_renderer() -> None:
    code = "import sys, explorer.graph; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.dot
@pytest.mark.parametrize("nf", sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c")))
def test_dot_renders_every_sample(nf: str, tmp_path: Path) -> None:
    assert shutil.which("dot"), "Graphviz's dot is required (CI installs it)"
    analysis = analyze(ROOT / "sample_nfs" / f"{nf}.c")
    highlight = analysis.objects[0].name if analysis.objects else None
    for dot in (access_graph(analysis), access_graph(analysis, highlight=highlight)):
        done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.lstrip().startswith("<?xml") and "</svg>" in done.stdout
        assert not done.stderr.strip(), done.stderr
