"""Every construct the path explorer refuses gives an NfxError at file:line:col with a clear sentence."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer.errors import AnalysisWarning, CSyntaxError, NfxError, UnsupportedError
from explorer.symbex import analyze

HEADERS = """\
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
"""

# (name, globals, nf_init body, nf_process body, line of the error (1-based, in the whole file),
#  column, words in the message). The file is: line 1 #include, the globals (one line each), the
#  nf_init lines, then nf_process starting with its signature line.
CASES = [
    ("unknown function", "", "return true;", "  return mystery(device);", 6, 10,
     "call to unknown function mystery()"),
    ("recursion", "static int f(int n);\nstatic int f(int n) { return n ? f(n - 1) : 0; }", "return true;",
     "  return f(3);", 3, 34, "recursive call to f() (f -> f)"),
    ("mutual recursion", "static int g(int);\nstatic int f(int n) { return g(n); }\n"
     "static int g(int n) { return f(n); }", "return true;", "  return f(1);", 4, 30,
     "recursive call to f() (f -> g -> f)"),
    ("function pointer variable", "static int zero(void) { return 0; }", "return true;",
     "  int (*fp)(void) = zero;\n  return fp();", 7, 8, "function pointers are not supported"),
    ("function as a value", "static int zero(void) { return 0; }", "return true;",
     "  return (int)(long)&zero;", 7, 22, "function pointers are not supported"),
    ("global written", "static int counter;", "return true;", "  counter++;\n  return 0;", 7, 3,
     "nf_process writes global variable counter"),
    ("global written through a pointer", "static int counter;", "return true;",
     "  int *p = &counter;\n  *p = 1;\n  return 0;", 8, 4, "nf_process writes global variable counter"),
    ("static local", "", "return true;", "  static int seen = 0;\n  return seen;", 6, 14,
     "static local variable seen keeps state across packets"),
    ("goto", "", "return true;", "  goto out;\nout:\n  return 0;", 6, 3, "goto out is not supported"),
    # the C cleanup style: the refusal says how to write it without goto
    ("goto to a common exit", "", "return true;",
     "  int verdict = NF_DROP;\n  if (len < 60) {\n    if (device == 0)\n      goto done;\n  }\n  verdict = 1;\n"
     "done:\n  return verdict;", 9, 7, "goto done is not supported (the analysis follows structured control flow "
     "only); to jump to a common exit, return there instead: put the code after done: in a helper and write "
     "`return finish(verdict);` for each goto, or wrap the statements before done: in `do { ... } while (0)`"),
    # a path that reaches the label first is refused at the goto all the same
    ("goto back", "", "return true;", "  int n = 0;\nagain:\n  n++;\n  if (n < 3) goto again;\n  return 0;",
     9, 14, "goto again is not supported (the analysis follows structured control flow only); write this jump back "
     "to again: as a loop (`while`, `for`) with a constant bound"),
    ("label without goto", "", "return true;", "unused:\n  return 0;", 6, 1,
     "labels (here unused:) and goto are not supported, and nothing jumps to unused: remove the label"),
    ("called above its definition", "", "return true;", "  return later(device);\n}\n"
     "static int later(int d) { return d;", 6, 10, "later() is called before it is declared; C has no implicit"),
    ("capacity past uint32_t", "static struct nf_map *m;", "return nf_map_allocate(4, 4294967296ULL, &m);",
     "  return 0;", 4, 29, "argument 2 of nf_map_allocate() is 4294967296, which its parameter (unsigned 32-bit) "
     "cannot hold"),
    ("capacity 0", "static struct nf_map *m;", "return nf_map_allocate(4, 0, &m);", "  return 0;", 4, 10,
     "nf_map_allocate() with a capacity of 0: a map needs a capacity of at least 1"),
    ("cells of 0 bytes", "static struct nf_vector *v;", "return nf_vector_allocate(0, 8, &v);", "  return 0;", 4, 10,
     "nf_vector_allocate() with cells of 0 bytes: they need at least 1 byte"),
    # the same words as __asm__'s (it said only "inline assembly is not supported")
    ("inline asm", "", "return true;", '  asm("nop");\n  return 0;', 6, 3,
     "inline assembly (asm) is not supported: the analysis cannot see what it does"),
    ("variable-length array", "", "return true;", "  int n = len;\n  uint8_t buf[n];\n  return 0;", 7, 15,
     "variable-length arrays are not supported: an array's size must be a constant"),
    ("symbolic loop", "", "return true;", "  int n = 0;\n  for (int i = 0; i < len; i++) n++;\n  return n;", 7, 3,
     "the loop's condition depends on packet or state data"),
    ("endless loop", "", "return true;", "  int n = 0;\n  while (1) n++;\n  return n;", 7, 3,
     "the loop did not finish after 10000 iterations"),
    # the call forks the path: each found key would go round once more, without end
    ("loop condition from the state library", "static struct nf_map *m;", "return nf_map_allocate(4, 16, &m);",
     "  uint32_t k = 0;\n  int v;\n  while (nf_map_get(m, &k, &v)) k++;\n  return v;", 9, 3,
     "the loop's condition depends on packet or state data"),
    # an endless loop walking through state: each found value goes round once more (it took hours)
    ("endless loop deciding on state", "static struct nf_map *m;", "return nf_map_allocate(4, 16, &m);",
     "  uint32_t k = 0;\n  int v = 0;\n  while (1) {\n    if (!nf_map_get(m, &k, &v)) break;\n    k = (uint32_t)v;\n"
     "  }\n  return 0;", 9, 3, "the loop went round 128 times on one path, each time deciding on packet or state data"),
    ("unbounded index", "static const int table[4] = {1, 2, 3, 4};", "return true;",
     HEADERS + "  return table[ip->ttl];", 9, 16, "index may be outside global variable table (4 elements)"),
    # a local array may change while nf_process runs: each index is a path (a const table or a global
    # read at a symbolic index is one value, tests/test_symbex_tables.py)
    ("index with too many values", "", "return true;",
     HEADERS + "  uint8_t table[256] = {0};\n  return table[ip->ttl];", 9, 16, "may take more than 16 values"),
    ("past the IPv4 header", "", "return true;", HEADERS + "  uint8_t *bytes = (uint8_t *)ip;\n  return bytes[20];",
     9, 10, "past the IPv4 header (20 bytes); use nf_tcpudp_header()"),
    ("past the TCP/UDP ports", "", "return true;",
     "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n  if (l4 == NULL) return NF_DROP;\n"
     "  uint8_t *bytes = (uint8_t *)l4;\n  return bytes[13];", 9, 10,
     "past the TCP/UDP header (4 bytes); only the ports are in struct nf_tcpudp_hdr: use nf_tcp_fields() for the "
     "rest of a TCP header"),
    ("past the TCP header", "", "return true;",
     "  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);\n  if (tcp == NULL) return NF_DROP;\n"
     "  uint8_t *bytes = (uint8_t *)tcp;\n  return bytes[16];", 9, 10,
     "past the TCP header after the ports (16 bytes); TCP options are not modelled"),
    ("past the Ethernet header", "", "return true;",
     "  struct nf_ether_hdr *eth = nf_ether_header(packet);\n  return *((uint8_t *)(eth + 1));", 7, 12,
     "past the Ethernet header (14 bytes)"),
    ("raw packet bytes", "", "return true;", "  return packet[12];", 6, 10,
     "use nf_ether_header(), nf_ipv4_header() and nf_tcpudp_header()"),
    # a bounded symbolic index is still raw bytes (not "may be outside the packet (0 elements)")
    ("raw packet bytes at a checked index", "", "return true;",
     "  uint16_t at = len - 1;\n  if (at < 14) return NF_DROP;\n  return packet[at];", 8, 10,
     "use nf_ether_header(), nf_ipv4_header() and nf_tcpudp_header()"),
    ("raw packet bytes through a moved pointer", "", "return true;",
     "  if (len < 16) return NF_DROP;\n  return *(packet + (len - 2));", 7, 12,
     "use nf_ether_header(), nf_ipv4_header() and nf_tcpudp_header()"),
    ("NULL header", "", "return true;", HEADERS.replace("  if (ip == NULL) return NF_DROP;\n", "")
     + "  return ip->ttl;", 7, 10, "dereference of a NULL or integer pointer"),
    ("allocation in nf_process", "static struct nf_map *m;", "return true;",
     "  nf_map_allocate(4, 4, &m);\n  return 0;", 7, 3, "state objects are allocated only by nf_init"),
    ("handle in a local", "", "struct nf_map *m;\n  return nf_map_allocate(4, 4, &m);", "  return 0;", 4, 10,
     "must store the handle in a global pointer variable"),
    ("cell after return", "static struct nf_vector *v;", "return nf_vector_allocate(4, 4, &v);",
     "  int *c = nf_vector_borrow(v, 0);\n  nf_vector_return(v, 0, c);\n  return *c;", 9, 11,
     "used after nf_vector_return"),
    ("wrong object kind", "static struct nf_map *m;", "return nf_map_allocate(4, 4, &m);",
     "  nf_dchain_free_index((struct nf_dchain *)m, 0);\n  return 0;", 7, 3,
     "is called on m, a map, not a dchain"),
    ("floating point", "", "return true;", "  double x = 1.5;\n  return (int)x;", 6, 3,
     "floating-point types are not supported"),
    ("bit-field", "struct flags { int a : 3; };", "return true;", "  struct flags f;\n  return 0;", 2, 20,
     "bit-fields are not supported (here a): their layout is the compiler's; give each flag a whole uint8_t "
     "member, or keep the bits in one integer member and test them with masks (`flags & 0x1`)"),
    ("division by zero", "", "return true;", "  int zero = 0;\n  return 5 / zero;", 7, 10,
     "division by zero: the divisor is always 0 here (a macro, or a -D value, that is 0?)"),
    ("remainder by a zero macro", "#define SLOTS 0", "return true;", "  return len % SLOTS;", 7, 10,
     "division by zero: the divisor is always 0 here"),
    ("division by a packet field that can be 0", "", "return true;", HEADERS + "  return 1000 / ip->ttl > 9;", 8, 10,
     "division by p.ipv4.ttl, which can be 0 on this path: undefined in C"),
    ("remainder in a compound assignment", "", "return true;", HEADERS + "  int x = 7;\n  x %= ip->tos;\n  return x & 1;",
     9, 3, "division by p.ipv4.tos, which can be 0 on this path"),
    ("vector index from the packet past the capacity", "static struct nf_vector *v;",
     "return nf_vector_allocate(4, 16, &v);",
     HEADERS + "  int *c = nf_vector_borrow(v, ip->ttl);\n  int x = *c;\n  nf_vector_return(v, ip->ttl, c);\n"
     "  return x & 1;", 9, 12, "the index p.ipv4.ttl of v can be "),
    ("shift by a packet field that can reach the width", "", "return true;",
     HEADERS + "  uint32_t x = 1u << ip->ttl;\n  return x > 9;", 8, 16,
     "shift by p.ipv4.ttl, which can be "),
    ("negative verdict", "", "return true;", "  return -3;", 6, 3, "nf_process returns -3"),
    ("verdict past the devices", "", "return true;", "  if (len > 100) return 7;\n  return 1;", 6, 18,
     "nf_process returns 7 here; a verdict is a device (0..1, since NF_DEVICES is 2), NF_DROP or NF_FLOOD"),
    ("verdict from the packet", "", "return true;", "  return len & 3;", 6, 3,
     "nf_process may return p.len & 3 here, which can be "),
    ("negative verdict from the packet", "", "return true;", HEADERS + "  return (int8_t)ip->ttl;", 8, 3,
     "nf_process may return "),
    ("device from state, unchecked", "static struct nf_vector *v;", "return nf_vector_allocate(4, 4, &v);",
     "  int *c = nf_vector_borrow(v, 0);\n  int out = *c;\n  nf_vector_return(v, 0, c);\n  return out;", 10, 3,
     "a negative value other than NF_DROP and NF_FLOOD; a verdict is a device (0..1, since NF_DEVICES is 2), "
     "NF_DROP or NF_FLOOD: test the value before returning it"),
    # C declares a misspelt tag on the spot; the error is at the first member access, saying so
    ("misspelt struct tag", "", "return true;", "  struct nf_ether_header *e = (struct nf_ether_header *)"
     "nf_ether_header(packet);\n  return e->ether_type;", 7, 10,
     "member access on struct nf_ether_header, which is declared but never defined"),
    ("argument count", "static int twice(int a) { return 2 * a; }", "return true;", "  return twice(1, 2);", 7, 10,
     "twice() takes 1 argument, 2 given"),
    ("cell left borrowed", "static struct nf_vector *v;", "return nf_vector_allocate(4, 4, &v);",
     "  int *c = nf_vector_borrow(v, 0);\n  if (*c > 3) return NF_DROP;\n  *c += 1;\n  nf_vector_return(v, 0, c);\n"
     "  return 0;", 8, 15, "nf_process returns here with a cell of v still borrowed (nf_vector_borrow at "),
    ("local read before it is set", "", "return true;", "  int out;\n  if (len > 100) out = 1;\n  return out;",
     8, 10, "local variable out is read before it is set on this path: C leaves it as the stack held it"),
    # a variadic helper was said to take the wrong number of arguments (its ... counted as one)
    ("variadic helper", "static int first(int n, ...) { return n; }", "return true;", "  return first(1, 2);", 2, 25,
     "first() takes a variable argument list (...), which is not supported: give it a fixed parameter list"),
    # these two were "unsupported expression (Compound)" and "(GenericSelection)", pycparser's class names
    ("statement expression", "", "return true;", "  return ({ int x = 1; x; });", 6, 11,
     "statement expressions ({ ... }), a GNU extension, are not supported"),
    ("_Generic", "", "return true;", "  return _Generic(len, uint16_t: 1, default: 0);", 6, 10,
     "_Generic selections are not supported"),
    # a traceback (AttributeError: 'ID' object has no attribute 'type')
    ("K&R definition", "static int f(a) int a; { return a & 1; }", "return true;", "  return f(len);", 2, 12,
     "f() is defined in the old (K&R) style, its parameters typed in declarations after the ')', which is not "
     "supported: type them in the parameter list, as in `int f(int a)`"),
    # unsigned __int128 was read as unsigned int, __int128 was "unknown type"
    ("unsigned __int128", "", "return true;", "  unsigned __int128 x = len;\n  return (int)(x >> 64);", 6, 3,
     "128-bit integers (unsigned __int128) are not supported"),
    ("__int128", "", "return true;", "  __int128 x = len;\n  return (int)(x & 1);", 6, 3,
     "128-bit integers (__int128) are not supported"),
    # it said "an array without a size needs an initializer the analyzer can count"
    ("flexible array member", "struct msg { uint16_t n; uint8_t data[]; };", "return true;",
     "  return (int)(sizeof(struct msg) & 1);", 2, 34, "flexible array members are not supported (here data[])"),
    # it said "unknown identifier '__func__'"
    ("__func__", "", "return true;", "  return __func__[0] == 'n';", 6, 10,
     "__func__ (the enclosing function's name as a string) is not supported"),
    # it said "cast to union u is not valid C"
    ("cast to a union", "union u { uint32_t a; uint16_t b; };", "return true;",
     "  union u x = (union u)(uint32_t)len;\n  return x.b & 1;", 7, 15,
     "a cast to a union (union u), a GNU extension, is not supported: declare a union u and set the member"),
    # gcc's bit builtins where C leaves them undefined (they were 'call to unknown function')
    ("__builtin_clz of a packet value that can be 0", "", "return true;",
     HEADERS + "  return __builtin_clz(nf_ntohl(ip->src_addr)) > 8;", 8, 10,
     "__builtin_clz() of p.ipv4.src, which can be 0 on this path: undefined in C"),
    ("__builtin_ctzll of a packet value that can be 0", "", "return true;",
     HEADERS + "  return __builtin_ctzll((uint64_t)ip->ttl << 8) > 8;", 8, 10,
     "__builtin_ctzll() of "),
    ("__builtin_ctz of a constant 0", "#define SLOT_MASK 0", "return true;", "  return __builtin_ctz(SLOT_MASK);",
     7, 10, "__builtin_ctz(0) is undefined in C: the argument is always 0 here"),
    ("__builtin_constant_p of two arguments", "", "return true;", "  return __builtin_constant_p(1, 2);", 6, 10,
     "__builtin_constant_p() takes 1 argument, 2 given"),
    # type specifiers the analysis did not know were left out (_Complex int read as int, long char as char)
    ("_Complex", "", "return true;", "  _Complex int z = len;\n  return 0;", 6, 3,
     "complex types (_Complex int) are not supported"),
    ("long char", "", "return true;", "  long char c = 1;\n  return c;", 6, 3,
     "invalid type 'long char': C has no type with these specifiers"),
    ("signed unsigned", "static signed unsigned int g;", "return true;", "  return 0;", 2, 8,
     "invalid type 'signed unsigned int'"),
    ("unsigned void", "", "return true;", "  unsigned void *p = 0;\n  return 0;", 6, 3,
     "invalid type 'unsigned void': the type specifier 'void' does not combine with the others"),
    ("nf_init fails", "", "return false;", "  return 0;", 3, 3, "nf_init returns false"),
    ("no nf_process", "", "return true;", None, None, None, "does not define nf_process() (expected: int nf_process("),
    # it said only 'the NF does not define nf_process()', with no place
    ("misspelt nf_process", "static int nf_proces(uint16_t d) { return 1 - d; }", "return true;", None, 2, 12,
     "the NF does not define nf_process(): nf_proces(), defined here, looks like a misspelling of it"),
]


def _write(tmp_path: Path, globals_: str, init: str, body: str | None) -> Path:
    text = '#include "nf.h"\n' + (globals_ + "\n" if globals_ else "") + "bool nf_init(void) {\n  " + init + "\n}\n"
    if body is not None:
        text += "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n" + body + "\n}\n"
    path = tmp_path / "bad.c"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name,globals_,init,body,line,col,words", CASES, ids=[c[0] for c in CASES])
def test_unsupported_constructs_are_named_with_their_location(tmp_path: Path, name: str, globals_: str, init: str,
                                                              body: str | None, line: int | None, col: int | None,
                                                              words: str) -> None:
    path = _write(tmp_path, globals_, init, body)
    with pytest.raises(UnsupportedError) as err:
        analyze(path)
    assert words in err.value.message, str(err.value)
    if line is not None:
        assert err.value.location is not None, str(err.value)
        assert (err.value.location.file, err.value.location.line, err.value.location.col) == (str(path), line, col), \
            str(err.value)
        assert str(err.value).startswith(f"{path}:{line}:{col}: ")


@pytest.mark.parametrize("body", [
    "  if (ip->ttl == 0) return NF_DROP;\n  return 1000 / ip->ttl > 9;",
    "  return ip->ttl != 0 && 1000 / ip->ttl > 9;",
    "  return ip->ttl == 0 || 1000 / ip->ttl > 9;",
    "  return (ip->ttl ? 1000 / ip->ttl : 0) > 9;",
    "  return ((1u << (ip->ttl & 31)) > 9) + (1000 / (len | 1) > 9) - 1;",
    "  if (ip->ttl > 31) return NF_DROP;\n  return (1u << ip->ttl) > 9;",
    "  return ip->src_addr != 0 && __builtin_clz(ip->src_addr) > 8;",
    "  if (ip->dst_addr == 0) return NF_DROP;\n  return __builtin_ctz(ip->dst_addr) > 3;",
    "  return (ip->ttl ? __builtin_ctzl(ip->ttl) : 8) + __builtin_clzll(ip->tos | 1ull) > 3;",
])
def test_divisions_and_shifts_guarded_on_their_path_are_analysed(tmp_path: Path, body: str) -> None:
    assert analyze(_write(tmp_path, "", "return true;", HEADERS + body)).paths


def test_a_bit_count_of_a_state_value_is_left_to_the_nf(tmp_path: Path) -> None:
    """As for a division: a cell may hold what only the NF knows is never 0 (a bitmap it never
    fills), so ``__builtin_ctz`` of a cell is analysed unguarded; its term reads the width for 0."""
    body = ("  uint32_t *bits = nf_vector_borrow(v, 0);\n  int slot = __builtin_ctz(~*bits);\n"
            "  nf_vector_return(v, 0, bits);\n  return slot > 3 ? NF_DROP : 0;")
    analysis = analyze(_write(tmp_path, "static struct nf_vector *v;", "return nf_vector_allocate(4, 1, &v);", body))
    assert sorted(p.condition_text for p in analysis.paths) == ["__builtin_ctz(~v.cell#1) <= 3",
                                                                "__builtin_ctz(~v.cell#1) > 3"]


@pytest.mark.parametrize("index", ["ip->ttl % 16", "ip->ttl & 15", "ip->ttl < 16 ? ip->ttl : 0"])
def test_a_vector_index_from_the_packet_kept_in_range_is_analysed(tmp_path: Path, index: str) -> None:
    body = (HEADERS + f"  int k = {index};\n  int *c = nf_vector_borrow(v, k);\n  int x = *c;\n"
            "  nf_vector_return(v, k, c);\n  return x & 1;")
    assert analyze(_write(tmp_path, "static struct nf_vector *v;", "return nf_vector_allocate(4, 16, &v);", body)).paths


def test_asm_with_qualifiers_is_still_an_nfx_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "", "return true;", '  __asm__ volatile ("nop");\n  return 0;')
    with pytest.raises(NfxError) as err:
        analyze(path)
    assert isinstance(err.value, (CSyntaxError, UnsupportedError)) and err.value.location is not None


def test_the_time_limit_counts_the_analysis_own_cpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is CPU time of the analysing thread, so that an NF near it is accepted or refused the
    same way on a quiet and on a loaded machine; a sleeping thread (here: the analysis waiting for
    nothing) spends none of it."""
    import time

    from explorer.symbex import path_search

    fw = Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"
    monkeypatch.setattr(path_search, "MAX_SECONDS", 0.0)
    with pytest.raises(UnsupportedError, match=r"took more than 0 s of CPU time \(0 paths so far\)"):
        analyze(fw)
    monkeypatch.setattr(path_search, "MAX_SECONDS", 2.0)
    real = path_search.PathState

    def slow_state(*args, **kwargs):  # a path that waits a while (a machine under load) costs no CPU time
        time.sleep(0.4)
        return real(*args, **kwargs)

    monkeypatch.setattr(path_search, "PathState", slow_state)
    start = time.monotonic()
    assert len(analyze(fw).paths) == 7
    assert time.monotonic() - start > 2.0  # longer than the limit in wall-clock time, and accepted


def test_the_time_limit_stops_a_path_inside_its_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loops nested within the per-loop count (81 million iterations) end at the time limit, at the
    loop, rather than after it: the limit was checked only between paths."""
    import time

    from explorer.symbex import path_search

    monkeypatch.setattr(path_search, "MAX_SECONDS", 1.0)
    path = _write(tmp_path, "", "return true;", "  int n = 0;\n  for (int i = 0; i < 9000; i++)\n"
                                                "    for (int j = 0; j < 9000; j++) n ^= j;\n  return n & 1;")
    start = time.monotonic()
    with pytest.raises(UnsupportedError, match="took more than 1 s of CPU time") as err:
        analyze(path)
    assert time.monotonic() - start < 30 and err.value.location.line in (7, 8)


LEADING_ZEROS = """#include "nf.h"
bool nf_init(void) { return true; }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ether_hdr *eth = nf_ether_header(packet);
  int zeros = 0;
  LOOP
  return zeros == 6 ? NF_DROP : zeros == 0 ? 1 - device : NF_FLOOD;
}
"""


def test_a_counted_bound_before_a_data_test_forks_like_the_break_it_stands_for(tmp_path: Path) -> None:
    """``while (i < 6 && mac[i] == 0) i++`` is the ``for`` loop with ``if (mac[i] != 0) break;``:
    the same paths, with the same conditions."""
    forms = {"while": "while (zeros < 6 && eth->dst[zeros] == 0) zeros++;",
             "for": "for (; zeros < 6; zeros++) if (eth->dst[zeros] != 0) break;"}
    found = {}
    for name, loop in forms.items():
        nf = tmp_path / f"{name}.c"
        nf.write_text(LEADING_ZEROS.replace("LOOP", loop))
        found[name] = sorted((p.verdict.kind, p.condition_text) for p in analyze(nf).paths)
    assert found["while"] == found["for"] and len(found["while"]) == 8  # 0..6 zeros, 0 on two devices


def test_a_data_test_behind_a_bound_that_never_ends_the_loop_is_refused(tmp_path: Path) -> None:
    nf = tmp_path / "stuck.c"
    nf.write_text(LEADING_ZEROS.replace("LOOP", "while (zeros < 6 && eth->dst[0] == 0) {}"))
    with pytest.raises(UnsupportedError, match="the loop did not finish after 10000 iterations: it never ends, or "
                                               "runs longer than the analyzer unrolls a loop"):
        analyze(nf)


def test_an_endless_loop_that_a_counter_ends_may_decide_on_data_each_round(tmp_path: Path) -> None:
    """``for (;;)`` with a data test in every round is refused only past MAX_FORKING_ITERATIONS
    rounds on one path: a counter's break ends an NF's such loops sooner (here after 6 bytes)."""
    nf = tmp_path / "counted.c"
    nf.write_text(LEADING_ZEROS.replace("LOOP", "for (;;) {\n    if (zeros == 6 || eth->dst[zeros] != 0) break;\n"
                                                "    zeros++;\n  }"))
    assert len(analyze(nf).paths) == 8


def test_a_cell_an_early_return_leaves_borrowed_is_refused_where_it_returns() -> None:
    """The runtime stops an NF whose path leaves a vector cell borrowed a few packets later (more
    than 8 cells borrowed without nf_vector_return); analyze, solve and generate took it."""
    nf = Path(__file__).resolve().parent / "nfs" / "leaky_cell.c"
    lines = nf.read_text().splitlines()
    with pytest.raises(UnsupportedError) as err:
        analyze(nf)
    location = err.value.location
    assert lines[location.line - 1][location.col - 1:].startswith("return NF_DROP;")
    borrowed = next(n for n, line in enumerate(lines, 1) if "nf_vector_borrow(budgets" in line)
    assert f"a cell of budgets still borrowed (nf_vector_borrow at {nf}:{borrowed}:" in err.value.message


def test_a_verdict_a_switch_leaves_unset_is_refused_where_it_is_read() -> None:
    """unset_verdict's DMZ frames return a local no case set: the analysis read it as 0 (forward to
    the LAN), gcc's build returns what the stack held."""
    nf = Path(__file__).resolve().parent / "nfs" / "unset_verdict.c"
    lines = nf.read_text().splitlines()
    with pytest.raises(UnsupportedError) as err:
        analyze(nf)
    location = err.value.location
    assert lines[location.line - 1][location.col - 1:] == "out;"
    assert "local variable out is read before it is set on this path" in err.value.message


def test_a_local_set_on_every_path_before_its_read_is_analysed(tmp_path: Path) -> None:
    """Set in both branches, through a pointer (memset, an out-parameter the library fills) or in
    part when only the part set is read: no error."""
    path = _write(tmp_path, "static struct nf_map *m;", "return nf_map_allocate(4, 16, &m);",
                  "  int out;\n  if (len > 100) out = 1; else out = 0;\n  uint32_t k;\n  memset(&k, 0, sizeof k);\n"
                  "  int v;\n  if (nf_map_get(m, &k, &v)) out = v & 1;\n  struct { uint16_t a, b; } pair;\n"
                  "  pair.a = len;\n  return (out + (pair.a > 9999)) & 1;")
    assert len(analyze(path).paths) >= 2


def test_a_path_that_runs_off_the_end_of_nf_process_says_so_and_for_which_device() -> None:
    nf = Path(__file__).resolve().parent / "nfs" / "falls_off.c"
    with pytest.raises(UnsupportedError) as err:
        analyze(nf)
    assert "nf_process reaches its closing brace without a return on a path (e.g. for a frame on device 1)" \
        in err.value.message
    assert err.value.location is not None and err.value.location.file == str(nf)


def test_an_nf_process_whose_parameters_conflict_with_nf_h_is_refused_where_it_is_defined(tmp_path: Path) -> None:
    """gcc refuses `int nf_process(int device, uint8_t *packet, int len, nf_time_t now)` (conflicting
    types with nf.h's prototype); analyze and solve went on with it and only the first build said so.
    Spellings of the same types (unsigned short, uint64_t as the system spells it) still pass."""
    path = tmp_path / "sig.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(int device, uint8_t *packet, int len, nf_time_t now) {\n  return 1 - device;\n}\n")
    with pytest.raises(UnsupportedError) as err:
        analyze(path)
    assert "conflicting types for nf_process" in err.value.message and "int nf_process(int, " in err.value.message
    assert (err.value.location.line, err.value.location.col) == (3, 5)
    path.write_text('#include "nf.h"\nbool nf_init() { return true; }\n'
                    "int nf_process(unsigned short device, unsigned char *packet, unsigned short len,\n"
                    "               unsigned long now) {\n  (void)packet; (void)len; (void)now;\n  return 1 - device;\n}\n")
    assert len(analyze(path).paths) == 2


def test_array_parameters_without_a_size_are_pointers(tmp_path: Path) -> None:
    """`uint8_t packet[]` and `const uint8_t mac[]` declare pointers (C11 6.7.6.3); the analysis
    refused them ('an array without a size needs an initializer')."""
    path = tmp_path / "arrays.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "static bool is_broadcast(const uint8_t mac[]) {\n"
                    "  for (int i = 0; i < 6; i++) if (mac[i] != 0xff) return false;\n  return true;\n}\n"
                    "int nf_process(uint16_t device, uint8_t packet[], uint16_t len, nf_time_t now) {\n"
                    "  (void)len; (void)now;\n"
                    "  if (is_broadcast(nf_ether_header(packet)->dst)) return NF_FLOOD;\n  return 1 - device;\n}\n")
    analysis = analyze(path)
    assert {p.verdict.kind for p in analysis.paths} == {"flood", "forward"}


@pytest.mark.parametrize("init,says", [
    ("return nf_map_allocate(4, 1u << 30, &m);", "nf_map_allocate() with a capacity of 1,073,741,824: the state "
     "library's maps (DPDK's rte_hash) hold at most 536,870,912 entries, so nf_init will fail when the NF runs"),
    ("return nf_dchain_allocate(1u << 31, &c);", "nf_dchain_allocate() with a capacity of 2,147,483,648: its "
     "indices are C ints, at most 2,147,483,647, so nf_init will fail when the NF runs")])
def test_capacities_past_the_state_librarys_limits_are_warned_of(tmp_path: Path, init: str, says: str) -> None:
    """Analysed as written (the run then names nf_init, tests/nfs/init_refuses.c), but said at once: analyze,
    solve and generate went through, and only the first run failed."""
    path = _write(tmp_path, "static struct nf_map *m;\nstatic struct nf_dchain *c;", init, "  return 0;")
    with pytest.warns(AnalysisWarning) as caught:
        analyze(path)
    assert [str(w.message) for w in caught] == [f"{path}:5:10: {says}"]
