"""C integer semantics of the path explorer, checked against gcc on the same C text.

Each expression is compiled by gcc into a small program that prints its value, and analysed inside an
NF that stores the value as a map key (so the analysis shows it as a term). Concrete expressions must
give the same number; symbolic ones (over header fields) must give a term that the evaluator, and Z3
itself, compute to gcc's number for random inputs.
"""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import z3

from explorer.symbex import analyze
from explorer.symbex.evaluate import compile_term

PRELUDE = """\
#include "nf.h"
struct pair { uint8_t a; uint32_t b; };          /* 3 bytes of padding */
union word { uint32_t w; uint8_t b[4]; };
struct nf_map *out;
bool nf_init(void) { return nf_map_allocate(8, 64, &out); }
#define OUT(...) do { uint64_t v_ = (uint64_t)(__VA_ARGS__); nf_map_put(out, &v_, 0); } while (0)
"""

# (expression, note); the expressions may use x8 = 255, x16 = 0xabcd, i = -5, u = 0x8000000000000001.
CONCRETE = [
    "(uint8_t)(x8 + 1)", "x8 + 1", "(uint8_t)(x8 * 2)", "(int8_t)x8", "(uint16_t)(x16 << 4)", "x16 << 4",
    "-1 < 1u", "-1 < (int)1u", "-1L < 1u", "(uint32_t)-1 >> 31", "-8 >> 1", "i >> 1", "(int)0x80000000",
    "7 / -2", "7 % -2", "-7 / 2", "-7 % 2", "i / 2", "i % 3", "7u / 2", "0xffffffffu % 7",
    "(uint32_t)(0xffffffffu + 1u)", "1ull << 63", "(long long)(1ull << 63) >> 62", "(short)40000",
    "(unsigned short)-1", "sizeof(uint64_t)", "sizeof(struct pair)", "sizeof(int[3])", "sizeof x8",
    "sizeof(union word)", "'A'", "'\\n'", "'\\x7f'", "'\\377'", "0x7fffffff + 1u", "(uint8_t)300", "!5", "!0",
    "~0u", "-(-3)", "~x8", "-x8", "x8 == 255 && x16 > 3 || 0", "x8 ? 10 : 20", "1 ? -1 : 0u",
    "(x16 & 0xff00) >> 8", "x16 ^ 0xffff", "u + u", "u * 3", "u >> 63", "(int64_t)u >> 63", "(uint32_t)u",
    "(int)(uint8_t)-1", "i * i * i", "(unsigned)i % 10", "017 + 0x1F + 0b101", "10000000000",
    "2147483648", "4294967295u + 0", "(int16_t)(x16 + 0x5433)", "(x8 > 200) + (x8 < 200) * 2",
    "(struct pair){1, 2}.b", "((union word){.w = 0x11223344}).b[0]", "(bool)256", "(bool)-1 + (bool)0",
]


def _exprs_c(exprs: list[str]) -> str:
    return "".join(f"  OUT({e});\n" for e in exprs)


def _gcc_values(tmp_path: Path, decls: str, exprs: list[str], inputs: list[tuple[int, ...]]) -> list[list[int]]:
    """Run the expressions with gcc, once per input tuple (the inputs fill ``in[]``)."""
    rows = ",".join("{" + ",".join(str(v) for v in row) + "ULL}" for row in inputs)
    program = f"""
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
struct pair {{ uint8_t a; uint32_t b; }};
union word {{ uint32_t w; uint8_t b[4]; }};
#define OUT(...) printf("%llu\\n", (unsigned long long)(uint64_t)(__VA_ARGS__))
static const unsigned long long inputs[][{max(1, len(inputs[0]))}] = {{{rows}}};
int main(void) {{
  for (unsigned k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {{
    const unsigned long long *in = inputs[k];
    (void)in;
{decls}
{_exprs_c(exprs)}  }}
  return 0;
}}
"""
    source, binary = tmp_path / "known.c", tmp_path / "known"
    source.write_text(program)
    subprocess.run(["gcc", "-std=gnu11", "-w", "-O0", "-o", str(binary), str(source)], check=True)
    numbers = [int(x) for x in subprocess.run([str(binary)], check=True, capture_output=True,
                                              text=True).stdout.split()]
    return [numbers[k * len(exprs):(k + 1) * len(exprs)] for k in range(len(inputs))]


def _analysed_terms(tmp_path: Path, decls: str, exprs: list[str], header: str = "") -> list:
    nf = tmp_path / "semantics.c"
    nf.write_text(PRELUDE + "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  + header + decls + _exprs_c(exprs) + "  return 0;\n}\n")
    analysis = analyze(nf)
    path = analysis.paths[-1]
    keys = [a.key for a in path.accesses if a.call == "nf_map_put"]
    assert len(keys) == len(exprs)
    return keys


def _host(key_value: int) -> int:
    """The uint64 whose little-endian bytes the key holds in memory order."""
    return int.from_bytes(key_value.to_bytes(8, "big"), "little")


def _constants_agree_with_gcc(tmp_path: Path, decls: str, exprs: list[str]) -> None:
    """Each of ``exprs`` over the constants ``decls`` declares, analysed, is what gcc computes."""
    expected = _gcc_values(tmp_path, decls, exprs, [(0,)])[0]
    keys = _analysed_terms(tmp_path, decls, exprs)
    got = [_host(z3.simplify(k).as_long()) for k in keys]
    mismatches = [(e, g, x) for e, g, x in zip(exprs, got, expected) if g != x]
    assert not mismatches, mismatches


def test_concrete_expressions_match_gcc(tmp_path: Path) -> None:
    _constants_agree_with_gcc(tmp_path, "    uint8_t x8 = 255; uint16_t x16 = 0xabcd; int32_t i = -5; "
                                        "uint64_t u = 0x8000000000000001ULL;\n", CONCRETE)


SYMBOLIC = [
    "(uint8_t)(a + 1)", "a + 1", "(int8_t)a", "(int8_t)a < 0", "sa < 1", "sa < 1u", "sa >> 1", "sa / 3", "sa % 3",
    "(uint32_t)sa", "b << 20", "(uint16_t)(b << 4)", "b >> 3", "c >> 31", "(int32_t)c >> 31", "c / 7", "c % 7",
    "(int32_t)c / -7", "(int32_t)c % -7", "c * c", "(uint64_t)c * c", "a < b", "c < (uint32_t)-a",
    "(int)a - (int)b", "(unsigned)a - b", "a ? b : c", "a > 100 && b < 1000", "a > 100 || !b",
    "~a", "-b", "!c", "a << (b & 7)", "c >> (a & 31)", "(b ^ c) & 0xfff", "(uint16_t)(b * b)",
    "(c / (a + 1)) + (c % (b | 1))", "(int16_t)b", "(int64_t)(int16_t)b * 3", "a == 255 ? 1 : a == 0 ? 2 : 3",
]
SYMBOLIC_HEADER = """\
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
"""
SYMBOLIC_DECLS = ("  uint8_t a = ip->ttl; int8_t sa = (int8_t)ip->tos; uint16_t b = nf_ntohs(l4->src_port);\n"
                  "  uint32_t c = nf_ntohl(ip->src_addr);\n")


def _fields_agree_with_gcc(tmp_path: Path, exprs: list[str], inputs: list[tuple[int, ...]], z3_every: int) -> None:
    """Each of ``exprs`` over the packet fields of SYMBOLIC_DECLS, analysed, gives what gcc computes
    for every row of ``inputs`` (ttl, tos, sport, src), through the evaluator, and through Z3's own
    reading of the term on every ``z3_every``-th row."""
    gcc_decls = ("    uint8_t a = (uint8_t)in[0]; int8_t sa = (int8_t)in[1]; uint16_t b = (uint16_t)in[2];\n"
                 "    uint32_t c = (uint32_t)in[3]; (void)sa;\n")
    expected = _gcc_values(tmp_path, gcc_decls, exprs, inputs)
    keys = _analysed_terms(tmp_path, SYMBOLIC_DECLS, exprs, SYMBOLIC_HEADER)
    env = {"p.ipv4.ttl": [r[0] for r in inputs], "p.ipv4.tos": [r[1] for r in inputs],
           "p.l4.sport": [r[2] for r in inputs], "p.ipv4.src": [r[3] for r in inputs]}
    fields = {name: z3.BitVec(name, bits) for name, bits in
              (("p.ipv4.ttl", 8), ("p.ipv4.tos", 8), ("p.l4.sport", 16), ("p.ipv4.src", 32))}
    for e, key in enumerate(keys):
        values = compile_term(key)(env)
        for k, row in enumerate(inputs):
            got = _host(int(values[k] if len(values) > 1 else values[0]))
            assert got == expected[k][e], f"{exprs[e]} with inputs {row}: {got} != gcc {expected[k][e]}"
        for k in range(0, len(inputs), z3_every):
            subs = [(fields[n], z3.BitVecVal(v[k], fields[n].size())) for n, v in env.items()]
            assert _host(z3.simplify(z3.substitute(key, *subs)).as_long()) == expected[k][e], exprs[e]


def test_symbolic_expressions_match_gcc_through_the_evaluator_and_z3(tmp_path: Path) -> None:
    rng = random.Random(3)
    edges = [(0, 0, 0, 0), (255, 127, 65535, 0xFFFFFFFF), (128, 128, 32768, 0x80000000), (1, 255, 1, 1)]
    inputs = edges + [(rng.randrange(256), rng.randrange(256), rng.randrange(65536), rng.randrange(1 << 32))
                      for _ in range(60)]
    _fields_agree_with_gcc(tmp_path, SYMBOLIC, inputs, z3_every=16)


UNSIZED_DECLS = ("    const uint16_t ports[] = {22, 23, 445}; char s[] = \"ab\\n\"; int d[] = {[4] = 7, 1};\n"
                 "    struct pair ps[] = {{1, 2}, {3, 4}, {.a = 5}}; uint8_t e[] = {0};\n")
UNSIZED = ["sizeof ports", "ports[2]", "sizeof s", "s[2]", "sizeof d / sizeof d[0]", "d[4]", "d[5]", "d[0]",
           "sizeof ps / sizeof ps[0]", "ps[2].a", "ps[1].b", "sizeof e"]


def test_arrays_without_a_size_take_their_initializer_s_length_as_in_gcc(tmp_path: Path) -> None:
    expected = _gcc_values(tmp_path, UNSIZED_DECLS, UNSIZED, [(0,)])[0]
    keys = _analysed_terms(tmp_path, UNSIZED_DECLS, UNSIZED)
    assert [_host(z3.simplify(k).as_long()) for k in keys] == expected


def test_a_file_scope_table_without_a_size_is_counted(tmp_path: Path) -> None:
    nf = tmp_path / "table.c"
    nf.write_text(PRELUDE + "static const uint16_t ports[] = {22, 23, 445, 3389};\n"
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n  if (l4 == NULL) return NF_DROP;\n"
                  "  for (unsigned i = 0; i < sizeof ports / sizeof ports[0]; i++)\n"
                  "    if (nf_ntohs(l4->dst_port) == ports[i]) return NF_DROP;\n"
                  "  OUT(sizeof ports);\n  return 0;\n}\n")
    analysis = analyze(nf)
    # every port of the table is tested (the loop's returns at each port are one path: its counter
    # ended with the loop), and none past it
    drops = [p for p in analysis.paths if p.verdict.kind == "drop"]
    assert len(drops) == 2  # not TCP/UDP, and a port of the table
    [forward] = [p.condition_text for p in analysis.paths if p.verdict.kind == "forward"]
    assert forward == "p.is_tcpudp && p.l4.dport != 22 && p.l4.dport != 23 && p.l4.dport != 445 && p.l4.dport != 3389"
    keys = [a.key for p in analysis.paths for a in p.accesses if a.call == "nf_map_put"]
    assert [_host(z3.simplify(k).as_long()) for k in keys] == [8]


# gcc's bit builtins (they were 'call to unknown function'); gcc runs at -O0, where
# __builtin_constant_p of a variable is 0, the answer the analysis gives at every level.
BUILTINS_CONCRETE = [
    "__builtin_clz(1)", "__builtin_clz(x16)", "__builtin_clz(0x80000000u)", "__builtin_ctz(x16 << 4)",
    "__builtin_ctz(0x80000000u)", "__builtin_clzl(1ul)", "__builtin_ctzl(1ul << 40)", "__builtin_clzll(u)",
    "__builtin_ctzll(u - 1)", "__builtin_clz(i)", "__builtin_ctz((uint8_t)i)", "__builtin_clz(x8) + __builtin_ctz(x8)",
    "__builtin_constant_p(7)", "__builtin_constant_p(sizeof(int) * 2 + 1)", "__builtin_constant_p(\"ab\")",
    "__builtin_constant_p(x8)", "__builtin_constant_p(x8 + 1)", "__builtin_constant_p(x8++) + x8",
    "__builtin_constant_p((uint16_t)-1 ? 3 : 4)",
]


def test_bit_builtins_of_constants_match_gcc(tmp_path: Path) -> None:
    _constants_agree_with_gcc(tmp_path, "    uint8_t x8 = 255; uint16_t x16 = 0xabcd; int32_t i = -5; "
                                        "uint64_t u = 0x8000000000000000ULL;\n", BUILTINS_CONCRETE)


BUILTINS_SYMBOLIC = [
    "__builtin_clz(c | 1)", "__builtin_ctz(c | 0x80000000u)", "__builtin_clz(b | 0x10000u)", "__builtin_ctz(a | 256)",
    "__builtin_clzll(((uint64_t)c << 32) | 1)", "__builtin_ctzll(((uint64_t)b << 40) | (1ull << 63))",
    "__builtin_clzl(c | (1ul << 40))", "__builtin_ctzl((uint64_t)c << 8 | (1ul << 50))",
    "(__builtin_clz(c | 1) < 8) * __builtin_ctz(c | 1u << 31)", "__builtin_constant_p(c)",
]


def test_bit_builtins_of_packet_fields_match_gcc_through_the_evaluator_and_z3(tmp_path: Path) -> None:
    rng = random.Random(4)
    edges = [(0, 0, 0, 0), (255, 127, 65535, 0xFFFFFFFF), (128, 128, 32768, 0x80000000), (1, 255, 1, 1)]
    inputs = edges + [(rng.randrange(256), rng.randrange(256), rng.randrange(65536),
                       rng.randrange(1 << 32) >> rng.randrange(32)) for _ in range(60)]
    _fields_agree_with_gcc(tmp_path, BUILTINS_SYMBOLIC, inputs, z3_every=8)