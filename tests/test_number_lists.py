"""Big NFs: a generated table of plain numbers is read without pycparser's lexer and parser (a
1.6 MB table took 12 s to parse and 20 s more to cut into tokens for generate), with the same
nodes, tokens, lines and columns; C past what the parser reads in a few seconds is refused at once,
by every command, with the reason."""
from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from pycparser import c_ast, c_parser
from pycparser.c_lexer import CLexer

from explorer.cli import main
from explorer.nfsource.number_lists import elide_number_lists, restore_number_lists
from explorer.nfsource.tokens import lex
from explorer.symbex import analyze
from explorer.symbex.evaluate import evaluate

LITERALS = ["7", "300", "0x1f", "0X7FFFFFFFu", "-9", "- 7", "077", "10UL", "0", "4294967295", "-2147483648",
            "0xffffffffffffffff", "1u"]
SEPARATORS = [",", ", ", " ,\n  ", ",\n", ",\n\n   ", " , "]


def _table_text(rng: random.Random, n: int) -> str:
    items = [rng.choice(LITERALS) for _ in range(n)]
    body = "".join(v + (rng.choice(SEPARATORS) if k < n - 1 or rng.random() < 0.5 else "") for k, v in enumerate(items))
    return "{" + rng.choice(["", "\n  ", " "]) + body + rng.choice(["", "\n", "  "]) + "}"


def _pycparser_tokens(text: str) -> list[tuple]:
    lexer = CLexer(lambda *a: None)
    lexer.input(text, "t.c")
    out = []
    while (tok := lexer.token()) is not None:
        out.append((tok.value, tok.lineno, tok.column))
    return out


def _nodes(ast: c_ast.Node) -> list[tuple]:
    out = []
    todo = [ast]
    while todo:
        node = todo.pop()
        out.append((type(node).__name__, str(node.coord), getattr(node, "value", None), getattr(node, "op", None)))
        todo.extend(child for _, child in reversed(node.children()))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_tokens_and_nodes_are_the_ones_pycparser_makes(seed: int) -> None:
    rng = random.Random(seed)
    text = (f"static const long t[] = {_table_text(rng, rng.randint(64, 150))}; int x = 1;\n"
            f"static const int u[2][70] = {{{_table_text(rng, 70)}, {_table_text(rng, 70)}}};\n")
    elided, lists = elide_number_lists(text)
    assert len(lists) == 3 and len(elided) < len(text) / 2
    assert [(t.value, t.line, t.column) for t in lex(text, "t.c")] == _pycparser_tokens(text)
    ours = c_parser.CParser().parse(elided, "t.c")
    restore_number_lists(ours, lists)
    assert _nodes(ours) == _nodes(c_parser.CParser().parse(text, "t.c"))


@pytest.mark.parametrize("body", ["1, 2, N, 4", "1, 2, [5] = 4", "1, 2, 3.5, 4", "1, 2, 1e5, 4", "1, 2, 'a', 4",
                                  "1, 2, , 4", "1, 2, 3 4, 5", "1, 2, 0x, 4", "1, 2, 08x, 4", "1, 2, --3, 4"])
def test_lists_with_anything_else_are_left_to_the_parser(body: str) -> None:
    text = "int t[] = {" + ", ".join([body] * 40) + "};"
    assert elide_number_lists(text) == (text, {})


C_TYPES = {"uint8_t": "%u", "int8_t": "%d", "uint16_t": "%u", "int32_t": "%d", "uint64_t": "%llu", "bool": "%d"}


@pytest.mark.parametrize("ctype", sorted(C_TYPES))
def test_a_table_holds_what_gcc_stores(tmp_path: Path, ctype: str) -> None:
    """Each literal converted to the element type as C converts it: the analysis's value at each
    index equals what a gcc-built program prints."""
    rng = random.Random(ctype)
    values = ", ".join(rng.choice(LITERALS) for _ in range(256))
    table = f"static const {ctype} T[256] = {{{values}}};\n"
    program = tmp_path / "print.c"
    program.write_text("#include <stdio.h>\n#include <stdint.h>\n#include <stdbool.h>\n" + table +
                       "int main(void) { for (int i = 0; i < 256; i++) printf(\"" + C_TYPES[ctype] +
                       "\\n\", (" + ("unsigned long long" if ctype == "uint64_t" else "int") + ")T[i]); return 0; }\n")
    subprocess.run(["gcc", "-w", "-o", str(tmp_path / "print"), str(program)], check=True)
    printed = subprocess.run([str(tmp_path / "print")], check=True, capture_output=True, text=True).stdout.split()
    nf = tmp_path / "table.c"
    nf.write_text('#include "nf.h"\nstatic struct nf_map *m;\n' + table +
                  "bool nf_init(void) { return nf_map_allocate(8, 16, &m); }\n"
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                  "  uint64_t v = (uint64_t)T[ip->ttl];\n  int index;\n  return nf_map_get(m, &v, &index);\n}\n")
    (key,) = {a.key.sexpr(): a.key for p in analyze(nf).paths for a in p.accesses}.values()
    stored = evaluate(key, {"p.ipv4.ttl": np.arange(256, dtype=np.uint64)}).tolist()
    # the key is the 8 bytes in memory order: the little-endian value's bytes reversed
    assert [int.from_bytes(int(k).to_bytes(8, "big"), "little") for k in stored] == [int(v) & (1 << 64) - 1 for v in printed]


def _huge_table(path: Path, entries: int, row: int = 12) -> list[int]:
    rng = random.Random(1)
    values = [rng.randrange(1 << 31) for _ in range(entries)]
    rows = ",\n".join("  " + ", ".join(str(v) for v in values[k:k + row]) for k in range(0, entries, row))
    rows = rows if row < entries else rows.strip()  # a table on one line: {1, 2, ...}; int x;
    brace = "\n" if row < entries else ""
    path.write_text('#include "nf.h"\n' + f"static const uint32_t BIG[{entries}] = {{{brace}{rows}{brace}}};\n"
                    "bool nf_init(void) { return true; }\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  return (BIG[ip->ttl] & 1) ? 1 - device : NF_DROP;\n}\n")
    return values


def test_a_table_of_140000_numbers_indexed_by_a_byte_is_analysed(tmp_path: Path) -> None:
    """1.6 MB of C: accepted (the index reaches the first 256 entries), its values right."""
    nf = tmp_path / "huge.c"
    values = _huge_table(nf, 140_000)
    assert nf.stat().st_size > 1_400_000
    start = time.process_time()
    analysis = analyze(nf)
    assert time.process_time() - start < 20  # 30 s and more before, then refused
    (drop,) = [p for p in analysis.paths if p.verdict.kind == "drop" and "p.ipv4.ttl" in p.condition_text]
    ipv4 = {"p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x45, "p.ipv4.frag_off": 0, "p.len": 64, "p.device": 0}
    env = {"p.ipv4.ttl": np.arange(256, dtype=np.uint64),
           **{name: np.full(256, value, dtype=np.uint64) for name, value in ipv4.items()}}
    assert evaluate(drop.condition, env).tolist() == [v & 1 == 0 for v in values[:256]]


def test_a_table_on_one_line_is_not_counted_as_c(tmp_path: Path) -> None:
    """A generated table written on one line (a script's ", ".join) kept its length in the text
    the parser reads, as blanks holding the column of what follows it: 40,000 numbers were refused
    as 460 KiB of C. Only the C around the lists counts, whatever their lines."""
    from explorer.frontend import parse_nf

    nf = tmp_path / "one_line.c"
    values = _huge_table(nf, 40_000, row=40_000)
    assert nf.stat().st_size > 400_000 and len(nf.read_text().splitlines()) == 8
    table = next(d for d in parse_nf(nf).ast.ext if getattr(d, "name", None) == "BIG")
    assert [int(c.value) for c in table.init.exprs[:3]] == values[:3] and len(table.init.exprs) == 40_000


@pytest.mark.parametrize("command", [["analyze"], ["solve"], ["generate", "-o", "out"],
                                     ["check", "--traffic", "uniform"], ["run", "--in", "0=tr/dev0.pcap", "--out", "out"]])
def test_too_much_c_is_refused_at_once_by_every_command(tmp_path: Path, capsys, monkeypatch, command) -> None:
    monkeypatch.chdir(tmp_path)
    nf = tmp_path / "many.c"
    helpers = "".join(f"static int helper_{k}(int x) {{\n  int y = x * {k % 97 + 1} + {k};\n  return y ^ (y >> 3);\n}}\n"
                      for k in range(4000))
    nf.write_text('#include "nf.h"\n' + helpers + "bool nf_init(void) { return true; }\n"
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  return helper_5(len) & 1;\n}\n")
    if command[0] == "run":
        assert main(["traffic", "uniform", "--packets", "10", "--out", "tr"]) == 0
    capsys.readouterr()
    start = time.monotonic()
    status = main([command[0], str(nf), *command[1:]])
    err = capsys.readouterr().err
    assert status != 0 and time.monotonic() - start < 10
    assert f"{nf}:1:1: the NF is " in err and "KiB of C after preprocessing" in err, err
    assert "leave out the functions nf_init and nf_process never call" in err and "Traceback" not in err


def _classification_nf(nf: Path, entries: int, run: int = 8192) -> list[int]:
    """An NF with a table of ``entries`` one-byte classes (a power of two), runs of ``run`` equal
    values, read at the packet's source address's top bits; the table's values."""
    values = [(k // run) * 37 % 5 for k in range(entries)]
    rows = "\n".join(",".join(map(str, values[k:k + 128])) + "," for k in range(0, entries, 128))
    nf.write_text('#include "nf.h"\n' + f"static const uint8_t CLASS[{entries}] = {{\n{rows}\n}};\n"
                  "bool nf_init(void) { return true; }\n"
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  (void)now;\n  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n"
                  "  if (ip == NULL) return NF_DROP;\n"
                  f"  return CLASS[ip->src_addr >> {33 - entries.bit_length()}] == 3 ? NF_DROP : 1 - device;\n}}\n")
    return values


def test_a_two_mib_classification_table_is_analysed_in_seconds(tmp_path: Path) -> None:
    """2 Mi one-byte entries (4 MB of C) read at an index from the packet: 35 s of CPU before (two
    million nodes and tokens made and each literal converted on its own), now read by its distinct
    spellings; the element read is still the table's value at each index."""
    entries, run = 2 * 1024 * 1024, 8192
    nf = tmp_path / "classify.c"
    values = _classification_nf(nf, entries, run)
    start = time.process_time()
    analysis = analyze(nf)
    assert time.process_time() - start < 8
    (drop,) = [p for p in analysis.paths if p.verdict.kind == "drop" and "CLASS" in p.condition_text]
    picks = np.array([0, run - 1, 4 * run, 5 * run - 1, 5 * run, 9 * run + 7, entries - 1], dtype=np.uint32)
    src = (picks << np.uint32(11)).byteswap()  # the field holds the address as on the wire
    ipv4 = {"p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x45, "p.ipv4.frag_off": 0, "p.len": 64, "p.device": 0}
    env = {"p.ipv4.src": src.astype(np.uint64),
           **{name: np.full(len(picks), value, dtype=np.uint64) for name, value in ipv4.items()}}
    dropped = [values[k] == 3 for k in picks.tolist()]
    assert evaluate(drop.condition, env).tolist() == dropped and dropped.count(True) == 3


@pytest.fixture(scope="module")
def mib_table_project(tmp_path_factory) -> tuple[Path, list[int], float]:
    """``nfx generate`` on an NF with a 1 Mi-entry table, once: (the project, the table's values,
    the CPU seconds it took)."""
    folder = tmp_path_factory.mktemp("mib_table")
    nf = folder / "classify.c"
    values = _classification_nf(nf, 1024 * 1024)
    start = time.process_time()
    assert main(["generate", str(nf), "-o", str(folder / "project")]) == 0
    return folder / "project", values, time.process_time() - start


def _table_in(nf_c: str, entries: int) -> list[int]:
    """The numbers between the braces of CLASS's initializer in ``nf_c``."""
    start = nf_c.index("{", nf_c.index(f"CLASS[{entries}] = "))
    return [int(v) for v in nf_c[start + 1:nf_c.index("}", start)].split(",") if v.strip()]


def test_a_mib_table_is_generated_in_seconds_and_kept_as_written(mib_table_project) -> None:
    """1 Mi entries (2 MB of C): some 70 s of CPU and 2 GB before, every number a token in the NF and
    in its preprocessed text to anchor the edits on, and two million nodes printed to check them;
    now a table is one token and printed from its distinct spellings. nf.c holds it unchanged."""
    project, values, seconds = mib_table_project
    assert seconds < 20
    nf_c = (project / "nf.c").read_text()
    assert _table_in(nf_c, len(values)) == values


@pytest.mark.dpdk
def test_the_generated_mib_table_compiles_to_its_values(mib_table_project, tmp_path: Path) -> None:
    """nf.c built as the project builds it: the object's CLASS holds the table's bytes."""
    from explorer import build

    project, values, _ = mib_table_project
    cflags, _ = build.dpdk_flags()
    obj, rodata = tmp_path / "nf.o", tmp_path / "rodata.bin"
    subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{project}", *cflags, "-c", str(project / "nf.c"), "-o", str(obj)],
                   check=True, capture_output=True)
    symbols = subprocess.run(["objdump", "-t", str(obj)], check=True, capture_output=True, text=True).stdout
    # "<offset> l     O <section>\t<size> CLASS": where it lies in which section (.tdata: one per core)
    ((offset, section, size),) = [(int(f[0], 16), f[-3], int(f[-2], 16)) for f in map(str.split, symbols.splitlines())
                               if f[-1:] == ["CLASS"]]
    subprocess.run(["objcopy", "-O", "binary", f"--only-section={section}", str(obj), str(rodata)], check=True)
    assert size == len(values) and list(rodata.read_bytes()[offset:offset + size]) == values
