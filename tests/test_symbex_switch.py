"""A long switch (a port-to-class table written as cases) is analysed in time linear in its cases:
each case's path is its own label's test, not the negations of every label above it too, which
made the merged ways, their texts and every replay grow with the square of the cases (a 300-case
switch took 37 s of CPU, a 1,000-case one minutes)."""
from __future__ import annotations

import time
from pathlib import Path

from explorer.frontend import parse_nf
from explorer.symbex import analyze
from explorer.symbex.path_search import explore


def port_classes(folder: Path, cases: int) -> Path:
    """An NF that counts frames per class of destination port, the classes given by ``cases`` cases."""
    body = "\n".join(f"  case {1000 + 7 * i}:\n    cls = {i % 4};\n    break;" for i in range(cases))
    path = folder / f"port_classes_{cases}.c"
    path.write_text(f"""#include "nf.h"
static struct nf_vector *counts;
bool nf_init(void) {{
  return nf_vector_allocate(sizeof(uint64_t), 4, &counts);
}}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {{
  (void)now;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {{
    return NF_DROP;
  }}
  uint32_t cls;
  switch (nf_ntohs(l4->dst_port)) {{
{body}
  default:
    cls = 3;
  }}
  uint64_t *n = nf_vector_borrow(counts, cls);
  *n += 1;
  nf_vector_return(counts, cls, n);
  return 1 - device;
}}
""")
    return path


def test_the_ways_through_a_long_switch_grow_with_its_cases(tmp_path: Path) -> None:
    cases = 200
    _, exploration = explore(parse_nf(port_classes(tmp_path, cases), {}))
    merged = [d for fp in exploration.finished for d in fp.state.decisions if d.ways is not None]
    assert merged, "the classes' cases merge"
    # every way is one case's test, or the default's negations of the cases (once per group)
    decisions = sum(len(way) for d in merged for way in d.ways)
    assert decisions <= 4 * cases, decisions  # with the labels above each case: about 4 * cases ** 2 / 2


def test_a_thousand_cases_take_seconds(tmp_path: Path) -> None:
    nf = port_classes(tmp_path, 1000)
    start = time.process_time()
    analysis = analyze(nf)
    seconds = time.process_time() - start
    assert seconds < 10, f"{seconds:.1f} s of CPU"  # about 2 s on the 2-core development machine
    texts = [p.condition_text for p in analysis.paths]
    # a class's merged cases read as the NF's labels; the default's class as the other labels' complement
    assert any("p.l4.dport == 1028 || p.l4.dport == 1000)" in t for t in texts), texts
    assert sorted(p.verdict.device for p in analysis.paths if p.verdict.kind == "forward") == [0, 0, 0, 0, 1, 1, 1, 1]
