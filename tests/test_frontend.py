"""The front end: preprocessing with our own headers, configuration macros, parse errors at file:line:col."""
from __future__ import annotations

import os
import re
import sys
import time
import warnings
from pathlib import Path

import pytest
from pycparser import c_ast

from explorer.errors import ConfigError, CSyntaxError, NfxError
from explorer.frontend import parse_nf
from explorer.ir import Location
from explorer.symbex import analyze

ROOT = Path(__file__).resolve().parent.parent

NF = """\
#include "nf.h"
#ifndef CAPACITY
#define CAPACITY 1024
#endif
#define LAN 0
#ifdef VERBOSE
static const int verbose = 1;
#endif
struct nf_map *flows;
bool nf_init(void) { return nf_map_allocate(4, CAPACITY, &flows); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  return device == LAN ? 1 : 0;
}
"""


def write(tmp_path: Path, text: str, name: str = "nf.c") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_parses_with_our_headers_and_reports_configuration(tmp_path: Path) -> None:
    parsed = parse_nf(write(tmp_path, NF), {})
    assert isinstance(parsed.ast, c_ast.FileAST)
    functions = [e.decl.name for e in parsed.ast.ext if isinstance(e, c_ast.FuncDef)]
    assert functions == ["nf_init", "nf_process"]
    assert parsed.defines == (("CAPACITY", "1024"), ("LAN", "0"), ("NF_DEVICES", "2"))
    assert parsed.devices == 2
    assert parsed.name == "nf"


def test_nodes_carry_the_original_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, NF)
    parsed = parse_nf(path, {})
    process = parsed.ast.ext[-1]
    location = parsed.source_map.location(process.decl.coord)
    assert location == Location(str(path), 11, 5)
    assert parsed.source_map.line(location).startswith("int nf_process(")


def test_stub_headers_have_real_widths(tmp_path: Path) -> None:
    parsed = parse_nf(write(tmp_path, NF), {})
    typedefs = {e.name: e.type.type.names for e in parsed.ast.ext if isinstance(e, c_ast.Typedef)
                and isinstance(e.type.type, c_ast.IdentifierType)}
    assert typedefs["uint8_t"] == ["unsigned", "char"]
    assert typedefs["uint16_t"] == ["unsigned", "short"]
    assert typedefs["uint32_t"] == ["unsigned", "int"]
    assert typedefs["uint64_t"] == ["unsigned", "long", "long"]
    assert typedefs["int16_t"] == ["short"]
    assert typedefs["size_t"] == ["unsigned", "long"]
    for header in ("stdint.h", "stdbool.h", "stddef.h", "string.h"):
        assert (Path(__file__).parent.parent / "explorer" / "frontend" / "include" / header).is_file()


def test_defines_override_guarded_macros_and_tested_ones(tmp_path: Path) -> None:
    parsed = parse_nf(write(tmp_path, NF), {"CAPACITY": "16", "VERBOSE": "1", "NF_DEVICES": "3"})
    assert dict(parsed.defines) == {"CAPACITY": "16", "LAN": "0", "NF_DEVICES": "3", "VERBOSE": "1"}
    assert parsed.devices == 3
    names = [e.name for e in parsed.ast.ext if isinstance(e, c_ast.Decl)]
    assert "verbose" in names


def test_an_unknown_define_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_nf(write(tmp_path, NF), {"CAPACTIY": "16"})
    assert "unknown define CAPACTIY" in str(err.value)
    assert "CAPACITY" in str(err.value) and "VERBOSE" in str(err.value)


def test_overriding_an_unguarded_define_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, NF)
    with pytest.raises(ConfigError) as err:
        parse_nf(path, {"LAN": "1"})
    assert str(err.value).startswith(f"{path}:5:1: define LAN: {path} defines LAN unconditionally; wrap its "
                                     "#define in #ifndef LAN")


@pytest.mark.parametrize("name", ["1ABC", "A-B", ""])
def test_a_bad_macro_name_is_a_config_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        parse_nf(write(tmp_path, NF), {name: "1"})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such NF source file"):
        parse_nf(tmp_path / "nope.c", {})


@pytest.mark.parametrize("nf_devices,message", [("0", "NF_DEVICES is 0; it must be an integer constant from 1 to 64"),
                                                ("65", "NF_DEVICES is 65"), ("x", "not 'x'")])
def test_nf_devices_must_be_a_small_positive_constant(tmp_path: Path, nf_devices: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_nf(write(tmp_path, NF), {"NF_DEVICES": nf_devices})


def test_nf_devices_may_be_an_expression(tmp_path: Path) -> None:
    assert parse_nf(write(tmp_path, NF), {"NF_DEVICES": "(2 * 2)"}).devices == 4


@pytest.mark.parametrize("source,line,col,words", [
    ('#include "nf.h"\n#include "missing.h"\n', 2, 10, "missing.h: No such file"),
    ('#include "nf.h"\n#include <stdio.h>\n', 2, 10, "stdio.h: No such file"),
    ('#include "nf.h"\n#if 1 +\n#endif\n', 2, None, "no right operand"),
    ('#include "nf.h"\n\n#error FW_CAPACITY must be a power of two\n', 3, 2, "must be a power of two"),
])
def test_preprocessor_errors_point_at_the_directive(tmp_path: Path, source: str, line: int, col: object,
                                                     words: str) -> None:
    path = write(tmp_path, source)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    location = err.value.location
    assert location is not None and (location.file, location.line) == (str(path), line)
    col = location.col if col is None else col  # gcc's caret for #if expressions varies by version
    assert location.col == col
    assert words in err.value.message
    assert str(err.value).startswith(f"{path}:{line}:{col}: preprocessor error")


@pytest.mark.parametrize("body,line,col,words", [  # gcc's words where gcc finds the error too
    ("int x = ;\n", 3, 9, "expected expression before ';' token"),
    ("int f(void) {\n  return 1 +\n    ;\n}\n", 5, 5, "expected expression before ';' token"),
    ("int f(void) {\n  return 1;\n", 4, 12, "expected declaration or statement at end of input"),
    ("int f(void) { int 3x; }\n", 3, 19, 'invalid suffix "x" on integer constant'),
    # GNU C: gcc accepts it, we do not, and say what it is (it was "syntax error: invalid expression")
    ("int f(int a) { return a ?: 1; }\n", 3, 25, "the conditional with its middle left out (x ?: y), a GNU"),
])
def test_parse_errors_point_at_the_nf_source(tmp_path: Path, body: str, line: int, col: int, words: str) -> None:
    path = write(tmp_path, '#include "nf.h"\n\n' + body)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line) == (str(path), line)
    assert words in err.value.message


# GNU C that gcc takes and the analysis does not: each named where it is written (they were "syntax
# error before 'x'", "syntax error before '{'", "syntax error: invalid expression" ...)
@pytest.mark.parametrize("body,line,col,words", [
    ("int f(int a) {\n  __auto_type x = a;\n  return x;\n}\n", 4, 3,
     "__auto_type declarations, a GNU extension, are not supported: write the type out"),
    ("int f(int a) {\n  int twice(int v) { return 2 * v; }\n  return twice(a);\n}\n", 4, 7,
     "nested functions (here twice), a GNU extension, are not supported: define twice at file scope"),
    ("int f(int a) {\n  if (a) {\n    int g(void) { return 1; }\n    return g();\n  }\n  return 0;\n}\n", 5, 9,
     "nested functions (here g)"),
    ("static const int T[16] = { [0 ... 7] = 1, [8] = 2 };\n", 3, 31, "designator ranges ([first ... last] = value)"),
    ("static const int T[2][16] = { [1] = { [4 ... 7] = 1 } };\n", 3, 42, "designator ranges"),
    ("int f(int a) {\n  void *p = &&out;\nout:\n  return a;\n}\n", 4, 13, "labels as values (&&out), a GNU"),
    ("int f(int a) {\n  static void *where[2] = { &&one, &&two };\n  goto *where[a & 1];\none:\n  return 0;\n"
     "two:\n  return 1;\n}\n", 4, 29, "labels as values (&&one)"),
    ("int f(void *p) {\n  goto *p;\n}\n", 4, 3, "computed goto (goto *), a GNU extension, is not supported"),
    ("int f(int a) {\n  return (a & 3) ?: 1;\n}\n", 4, 18, "the conditional with its middle left out (x ?: y)"),
    # at its column in the source, past a macro the line expands
    ("#define WIDE_NAME_OF_ONE 1\nint f(int a) {\n  return (a & WIDE_NAME_OF_ONE) ?: 1;\n}\n", 5, 33,
     "the conditional with its middle left out"),
    ("int f(int a) {\n  __label__ out;\n  return a;\n}\n", 4, 3, "local labels (__label__), a GNU extension"),
    ("int f(int a) {\n  auto x = a;\n  return x;\n}\n", 4, 3, "auto as an inferred type (C23's auto x = value)"),
    ("struct pt { int a; int b; };\nunsigned long f(void) { return __builtin_offsetof(struct pt, b); }\n", 4, 32,
     "__builtin_offsetof is not supported: use offsetof() from <stddef.h>"),
])
def test_gnu_c_that_gcc_takes_is_named_where_it_is_written(tmp_path: Path, body: str, line: int, col: int,
                                                           words: str) -> None:
    path = write(tmp_path, '#include "nf.h"\n\n' + body)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location == Location(str(path), line, col), str(err.value)
    assert words in err.value.message and "syntax error" not in err.value.message, err.value.message


def test_gnu_spellings_of_keywords_read_as_the_keywords(tmp_path: Path) -> None:
    """``__inline__``, ``__restrict``, ``__const``, ``__volatile__``, ``__signed__`` and ``__alignof__``
    (gcc takes them in every mode; code written for -std=c99 uses them) were syntax errors; the NF
    analyses as the one written with C's keywords."""
    plain = ('#include "nf.h"\nstatic inline int low(const uint8_t *restrict b, volatile int k) { return (b[0] + k) & 1; }\n'
             "bool nf_init(void) { return true; }\n"
             "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
             "  const signed char s = (signed char)len;\n  uint8_t b[1] = {(uint8_t)_Alignof(uint64_t)};\n"
             "  if (s < 0) return NF_DROP;\n  return low(b, len) ? 1 - device : NF_DROP;\n}\n")
    gnu = (plain.replace("inline", "__inline__").replace("restrict", "__restrict").replace("volatile", "__volatile__")
           .replace("const signed", "__const __signed__").replace("_Alignof", "__alignof__"))
    assert gnu.count("__") >= 6
    texts = [[p.condition_text for p in analyze(write(tmp_path, text, f"{name}.c")).paths]
             for name, text in (("plain", plain), ("gnu", gnu))]
    assert texts[0] == texts[1] and len(texts[0]) == 4 and any("(8 + p.len)" in t for t in texts[0]), texts


@pytest.mark.dpdk
def test_an_nf_in_gnu_spellings_runs_as_analysed() -> None:
    """gcc builds tests/nfs/gnu_spellings.c as written; on packets that follow each analysed path the
    parallel build answers as the sequential one."""
    from explorer import pipeline

    solution = pipeline.solve(ROOT / "tests" / "nfs" / "gnu_spellings.c", cores=2, quality=False)
    assert len(solution.analysis.paths) == 4
    report = pipeline.check(solution, "paths", cores=2)
    assert report.verdict == "equivalent" and report.packets >= 4, report.render()


def test_errors_in_an_nf_header_point_into_that_header(tmp_path: Path) -> None:
    write(tmp_path, "\nstruct key { int a b; };\n", "key.h")
    path = write(tmp_path, '#include "nf.h"\n#include "key.h"\nint x;\n')
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location == Location(str(tmp_path / "key.h"), 2, 20)


# ---- one reader: analyze, run and generate give the same answer ---------------------------------------

def _outcome(path: Path, defines: dict[str, str]) -> tuple:
    """What the analysis (and codegen, through parse_nf) and the build make of one NF, path and
    defines: ("ok", devices, configuration) or ("error", the message)."""
    from explorer import build
    from explorer.errors import NfxError
    from explorer.run import nf_devices

    try:
        parsed = parse_nf(path, defines)
        analysis = ("ok", parsed.devices)
    except NfxError as error:
        analysis = ("error", str(error))
    try:
        built = ("ok", nf_devices(build.build_nf(path, defines)))
    except NfxError as error:
        built = ("error", str(error))
    return analysis, built


CONFIGURABLE = """\
#ifndef CAPACITY
#define CAPACITY 1024
#endif
#define LAN 0
#include "nf.h"
struct nf_map *flows;
bool nf_init(void) { return nf_map_allocate(4, CAPACITY, &flows); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet; (void)len; (void)now;
  return device == LAN ? 1 : 0;
}
"""


@pytest.mark.dpdk
@pytest.mark.parametrize("defines,words", [
    ({"CAPACITY": "1.5"}, "define CAPACITY=1.5: floating-point values are not part of the NF language"),
    ({"CAPACITY": '"x"'}, "define CAPACITY=\"x\": a string values are not part of the NF language"),
    ({"CAPACITY": ""}, "define CAPACITY: needs a one-line value"),
    ({"CAPACITY": "16); int evil = (1"}, "the value is not a C expression"),
    ({"CAPACITY": "1 /* c */"}, "the value is not a C expression"),
    ({"NOPE": "1"}, "unknown define NOPE"),
    ({"LAN": "1"}, "defines LAN unconditionally"),
    ({"NF_DEVICES": "65"}, "NF_DEVICES is 65; it must be an integer constant from 1 to 64"),
    ({"NF_DEVICES": "0x10000"}, "NF_DEVICES is 65536"),
    ({"NF_DEVICES": "two"}, "NF_DEVICES must be an integer constant from 1 to 64, not 'two'"),
    # pasted where the macro is used, it would have changed the expression around it
    ({"CAPACITY": "1)+(2"}, "define CAPACITY=1)+(2: the value is not a C expression"),
    # was reported wrapped modulo 2^64 (7766279631452241919)
    ({"CAPACITY": "99999999999999999999"}, "a number past 64 bits (99999999999999999999); C has no integer"),
    ({"NF_NS_PER_SEC": "1"}, "define NF_NS_PER_SEC: NF_NS_PER_SEC is a constant of nf.h, not a setting of"),
])
def test_analysis_and_build_refuse_the_same_defines_with_the_same_words(tmp_path: Path, defines, words) -> None:
    analysis, built = _outcome(write(tmp_path, CONFIGURABLE), defines)
    assert analysis == built and analysis[0] == "error", (analysis, built)
    assert words in analysis[1]


@pytest.mark.dpdk
@pytest.mark.parametrize("defines,devices", [
    ({}, 2), ({"CAPACITY": "16"}, 2), ({"CAPACITY": "NF_IPV4(0, 0, 0, 16)"}, 2), ({"NF_DEVICES": "(2 * 2)"}, 4),
    ({"NF_DEVICES": "4u"}, 4), ({"NF_DEVICES": "(LAN + 3)"}, 3),
    ({"LAN": "0", "CAPACITY": "1024", "NF_DEVICES": "2"}, 2),  # an analysis's configuration, given back
])
def test_analysis_and_build_accept_the_same_defines(tmp_path: Path, defines, devices) -> None:
    assert _outcome(write(tmp_path, CONFIGURABLE), defines) == (("ok", devices), ("ok", devices))


@pytest.mark.dpdk
@pytest.mark.parametrize("name", ['q"uote.c', "new\nline.c", "com/*ment.c", "back\\slash.c", "tab\tand space.c",
                                  "caf\u00e9.c"])
def test_an_odd_file_name_keeps_its_macros_and_locations(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, CONFIGURABLE, name)
    assert _outcome(path, {"CAPACITY": "16"}) == (("ok", 2), ("ok", 2))
    parsed = parse_nf(path, {"CAPACITY": "16"})
    assert dict(parsed.defines) == {"CAPACITY": "16", "LAN": "0", "NF_DEVICES": "2"}
    process = parsed.ast.ext[-1]
    assert parsed.source_map.location(process.decl.coord) == Location(str(path), 8, 5)
    broken = write(tmp_path, CONFIGURABLE + "int x = ;\n", name)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(broken, {})
    assert err.value.location == Location(str(path), 12, 9)


@pytest.mark.dpdk
def test_a_path_that_looks_like_an_option_is_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, CONFIGURABLE, "-fplugin=evil.c")
    assert _outcome(Path("-fplugin=evil.c"), {"CAPACITY": "8"}) == (("ok", 2), ("ok", 2))
    write(tmp_path, CONFIGURABLE + "int x = ;\n", "-E.c")
    analysis, built = _outcome(Path("-E.c"), {})
    assert analysis == built == ("error", "-E.c:12:9: expected expression before ';' token")


@pytest.mark.dpdk
@pytest.mark.parametrize("body,words", [
    ("int x = ;\n", "nf.c:12:9: expected expression before ';' token"),
    ("int f(int a) { return a ?: 1; }\n", "nf.c:12:25: the conditional with its middle left out"),  # every command
    ("int x __attribute__((aligned(64)));\n", "nf.c:12:7: __attribute__ is not supported"),
    ("int x __attribute__((unused, aligned(8)));\n", "nf.c:12:7: __attribute__ is not supported"),
    ("int f(void) {\n  __asm__ volatile(\"\" ::: \"memory\");\n  return 0;\n}\n",
     "nf.c:13:3: inline assembly (__asm__) is not supported: the analysis cannot see"),
    ("int f(void) {\n  asm(\"\" ::: \"memory\");\n  return 0;\n}\n", "nf.c:13:3: inline assembly (asm) is not"),
    ("struct k { int a; char b; } __attribute__((packed));\n", "nf.c:12:29: __attribute__ is not supported"),
    ("static __typeof__(int) z;\n", "nf.c:12:8: __typeof__ is not supported: write the type out"),
    ("__extension__ typedef long long ll;\n", "nf.c:12:1: __extension__ is not supported"),
    # it said "syntax error before '...'"
    ("int f(int a) {\n  switch (a) { case 1 ... 5: return 1; }\n  return 0;\n}\n",
     "nf.c:13:23: case ranges (case 1 ... 5:), a GNU extension, are not supported"),
])
def test_analysis_and_build_refuse_the_same_syntax(tmp_path: Path, body: str, words: str) -> None:
    analysis, built = _outcome(write(tmp_path, CONFIGURABLE + body), {})
    assert analysis == built and analysis[0] == "error" and words in analysis[1], (analysis, built)


@pytest.mark.dpdk
@pytest.mark.parametrize("body,built,shown", [
    # style warnings (an NF being written): shown (BuildWarning), not fatal
    ("static int debug_helper(int x) { return x * 2; }\n", ("ok", 2), ["-Wunused-function"]),
    ("int f(int a) {\n  int unused_local;\n  switch (a) { case 1: a++; case 2: return a; }\n  return 0;\n}\n",
     ("ok", 2), ["-Wunused-variable", "-Wimplicit-fallthrough="]),
    ("int f(uint8_t a) { return a > 300; }\n", ("ok", 2), ["-Wtype-limits"]),
    # gcc reads these differently from what the analysis would assume: still errors
    ("uint8_t g = 300;\n", ("error", "overflow"), []),
    ("int *f(uint32_t *a) { return a; }\n", ("error", "pointer-sign"), []),
])
def test_style_warnings_in_the_nf_do_not_stop_its_build(tmp_path: Path, body: str, built: tuple,
                                                        shown: list[str]) -> None:
    from explorer.errors import BuildWarning

    path = write(tmp_path, CONFIGURABLE + body)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, outcome = _outcome(path, {})
    messages = [str(w.message) for w in caught if w.category is BuildWarning]
    assert [m[m.rindex("[") + 1:-1] for m in messages] == shown
    assert all(m.startswith(f"{path}:") for m in messages)
    assert outcome[0] == built[0] and str(built[1]) in str(outcome[1]), outcome


@pytest.mark.dpdk
@pytest.mark.parametrize("include,words", [
    ("<stdio.h>", "stdio.h: No such file or directory (an NF may include only nf.h"),
    ('"/dev/null"', "#include of /dev/null, which is outside the NF's folder"),
    ('"/etc/hostname"', "#include of /etc/hostname, which is outside the NF's folder"),
])
def test_analysis_and_build_allow_the_same_includes(tmp_path: Path, include: str, words: str) -> None:
    path = write(tmp_path, f'#include "nf.h"\n#include {include}\n' + CONFIGURABLE)
    analysis, built = _outcome(path, {})
    assert analysis == built and words in analysis[1], (analysis, built)
    assert analysis[1].startswith(f"{path}:2:")


# ---- inputs: bounded, decoded, never executed ----------------------------------------------------------

NF_BODY = ("bool nf_init(void) { return true; }\n"
           "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
           "  (void)packet; (void)len; (void)now; return device;\n}\n")


def _refused(path: Path, words: str, seconds: float = 15.0) -> str:
    """parse_nf refuses ``path`` within ``seconds`` with ``words`` in the message (``words`` may
    hold alternatives separated by `` | ``)."""
    from explorer.errors import NfxError

    started = time.monotonic()
    with pytest.raises(NfxError) as err:
        parse_nf(path, {})
    assert time.monotonic() - started < seconds
    assert any(w in str(err.value) for w in words.split(" | ")), str(err.value)
    return str(err.value)


@pytest.mark.parametrize("include,words", [
    # gcc may read /dev/zero past the memory limit before the watch sees it open: either refusal
    ("/dev/zero", "stopped reading /dev/zero: an NF may include only nf.h | (the memory limit); a macro that "
                  "expands exponentially, or an #include of a device such as /dev/zero?"),
    ("/dev/stdin", "2:1: #include of /dev/stdin, which is outside the NF's folder"),
    ("/dev/null", "#include of /dev/null, which is outside the NF's folder"),
    ("../outside.h", "#include of {tmp}/sub/../outside.h, which is outside the NF's folder"),
])
def test_only_files_in_the_nf_folder_are_included(tmp_path: Path, include: str, words: str) -> None:
    write(tmp_path, "int outside;\n", "outside.h")
    path = write(tmp_path, f'#include "nf.h"\n#include "{include}"\n' + NF_BODY, "sub/nf.c")
    _refused(path, words.format(tmp=tmp_path))


def test_a_fifo_or_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.h")
    _refused(write(tmp_path, '#include "nf.h"\n#include "pipe.h"\n' + NF_BODY), "stopped reading a FIFO (named pipe)")
    (tmp_path / "link.h").symlink_to("/etc/hostname")
    _refused(write(tmp_path, '#include "nf.h"\n#include "link.h"\n' + NF_BODY),
             f"#include of {tmp_path}/link.h (it leads to /etc/hostname), which is outside the NF's folder")


def test_own_headers_in_the_folder_and_below_are_fine(tmp_path: Path) -> None:
    write(tmp_path, "#ifndef CAP\n#define CAP 8\n#endif\n", "conf/cap.h")
    (tmp_path / "near.h").symlink_to(tmp_path / "conf" / "cap.h")  # a link that stays inside
    path = write(tmp_path, '#include "nf.h"\n#include "conf/cap.h"\n#include "near.h"\nint cap = CAP;\n' + NF_BODY)
    assert dict(parse_nf(path, {"CAP": "4"}).defines)["CAP"] == "4"


BOMB = "#define A0 x\n" + "".join(f"#define A{i} A{i - 1} A{i - 1}\n" for i in range(1, 41)) + "int y = A40;\n"
IF_BOMB = ("#define A0 1\n" + "".join(f"#define A{i} (A{i - 1} + A{i - 1})\n" for i in range(1, 41))
           + "#if A40\n#endif\n")


@pytest.mark.parametrize("bomb", [BOMB, IF_BOMB])
def test_a_macro_bomb_stops_within_seconds_saying_which_limit(tmp_path: Path, bomb: str) -> None:
    message = _refused(write(tmp_path, '#include "nf.h"\n' + bomb), "(the memory limit)", seconds=20)
    assert message.startswith(f"preprocessing {tmp_path / 'nf.c'}: stopped at 256 MiB of memory ")


@pytest.mark.parametrize("limits,words", [
    ((0.5, 1 << 32, 1 << 30), r"stopped after 0.5 s \(the time limit\)"),
    ((10, 1 << 32, 1 << 20), r"stopped at 1 MiB of output \(the output limit\)"),
])
def test_the_time_and_output_limits_are_named(tmp_path: Path, limits, words: str) -> None:
    from explorer.errors import ConfigError
    from explorer.nfsource.gcc import Limits, run_gcc

    path = write(tmp_path, "#define TEN x x x x x x x x x x\n" + "TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN\n" * 20000
                 if limits[2] < 1 << 30 else BOMB)
    with pytest.raises(ConfigError, match=words):
        run_gcc(["-E", str(path), "-o", str(tmp_path / "out.i")], "preprocessing", Limits(*limits),
                output=tmp_path / "out.i")


@pytest.mark.parametrize("data,where,words", [
    (b'#include "nf.h"\n#define NAME "caf\xe9"\n', (2, 18), "byte 0xe9 is not UTF-8 text"),
    (b"\x7fELF\x02\x01\x01\x00\x00", (1, 8), "a NUL byte: this is a binary file, not C source"),
    (b'#include "nf.h"\n// \xc3\xa9t\xc3\xa9 \xff\n', (2, 8), "byte 0xff is not UTF-8 text"),
])
def test_a_file_that_is_not_utf8_text_is_refused_at_its_line(tmp_path: Path, data: bytes, where, words) -> None:
    path = tmp_path / "nf.c"
    path.write_bytes(data)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert (err.value.location.file, err.value.location.line, err.value.location.col) == (str(path), *where)
    assert words in err.value.message


def test_a_header_that_is_not_utf8_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "key.h").write_bytes(b"/* ok */\n/* caf\xe9 */\n")
    path = write(tmp_path, '#include "nf.h"\n#include "key.h"\n' + NF_BODY)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location == Location(str(tmp_path / "key.h"), 2, 7)


@pytest.mark.parametrize("make,words", [
    (lambda p: p.mkdir(), "is a folder, not an NF source file"),
    (lambda p: os.mkfifo(p), "is not a regular file (a device, FIFO or socket)"),
    (lambda p: p.write_bytes(b"/*" + b" " * (9 << 20) + b"*/\n"), "is too large for an NF source file (at most 8 MiB)"),
    (lambda p: p.symlink_to("/dev/zero"), "is not a regular file"),
])
def test_an_nf_path_that_is_not_a_source_file_is_refused(tmp_path: Path, make, words: str) -> None:
    from explorer.errors import ConfigError

    path = tmp_path / "nf.c"
    make(path)
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_nf(path, {})


@pytest.mark.parametrize("name", ["fw.h", "fw.cc", "fw.C", "fw.txt", "fw.i", "fw"])
def test_an_nf_not_named_dot_c_is_refused_at_once(tmp_path, name):
    """gcc picks the language from the name (a .h compiles to a precompiled header, .cc as C++), so
    an NF named otherwise analysed, then failed at build time with gcc's or nm's words."""
    from explorer.nfsource import read_nf
    path = tmp_path / name
    path.write_text((Path(__file__).resolve().parent.parent / "sample_nfs" / "nop.c").read_text())
    with pytest.raises(ConfigError, match=rf"an NF is a C source file named \.c \('{name}' is not\); copy or rename"):
        read_nf(path)


def _shape(ast: c_ast.Node) -> tuple:
    """An AST as C text and every node's class and coordinates."""
    from pycparser import c_generator

    nodes, todo = [], [ast]
    while todo:
        node = todo.pop()
        coord = node.coord
        nodes.append((type(node).__name__, coord and (str(coord.file), coord.line, coord.column)))
        todo.extend(child for _, child in node.children())
    return c_generator.CGenerator().visit(ast), nodes


@pytest.mark.parametrize("nf", ["sample_nfs/lb.c", "tests/nfs/acl_count.c", "tests/nfs/macro_columns.c"])
def test_the_headers_parsed_once_give_the_ast_a_whole_parse_gives(nf: str) -> None:
    """nf.h's declarations are parsed once per process (they were a fifth of a small NF's
    analysis) and the NF's code after them, knowing their typedef names: the AST is the one a
    parse of the whole text gives, node for node and place for place, and shares the headers' nodes
    with the next parse."""
    from explorer.frontend import parser
    from explorer.nfsource import read_nf

    text = read_nf(ROOT / nf, {}).text
    whole = parser._parse(text, nf, None, None)
    first, again = parser.parse_text(text, nf), parser.parse_text(text, nf)
    assert _shape(first) == _shape(whole) and _shape(again) == _shape(whole)
    header = next(i for i, node in enumerate(whole.ext) if "nf.h" in str(node.coord.file))
    assert first.ext[header] is again.ext[header] and first.ext[-1] is not again.ext[-1]


def test_code_before_the_headers_and_errors_after_them_read_as_in_a_whole_parse(tmp_path: Path) -> None:
    """An NF whose own declarations come before nf.h is parsed whole; a syntax error after nf.h is
    reported at the place and in the words a whole parse gives."""
    from explorer.frontend import parser
    from explorer.nfsource import read_nf

    nop = (ROOT / "sample_nfs" / "nop.c").read_text()
    first = write(tmp_path, "static int before;\n" + nop, "first.c")
    text = read_nf(first, {}).text
    assert parser._after_headers(text, {}) is None
    assert _shape(parse_nf(first).ast) == _shape(parser._parse(text, str(first), None, None))
    broken = write(tmp_path, nop.replace("return", "return return", 1), "broken.c")
    with pytest.raises(CSyntaxError) as split:
        parser.parse_text(read_nf(broken, {}).text, str(broken))
    with pytest.raises(CSyntaxError) as whole:
        parser._parse(read_nf(broken, {}).text, str(broken), None, None)
    assert str(split.value) == str(whole.value) and split.value.location == whole.value.location
    assert split.value.location.file == str(broken)


def test_column_table_aligns_a_line_when_asked_and_each_line_alone() -> None:
    """A line's source columns come from aligning its tokens with the source line's; a line that
    cannot be cut into tokens keeps its preprocessed columns without costing the others theirs."""
    from explorer.frontend.columns import ColumnTable

    table = ColumnTable('# 1 "a.c"\nint x = 0 + y;\nint q = 0 + `;\nint same;\n',
                        {"a.c": "int x = LAN  + y;\nint q = LAN + `;\nint same;\n"})
    assert [table.differs("a.c", n) for n in (1, 2, 3)] == [True, True, False]
    assert [table.column("a.c", 1, c) for c in (1, 9, 11, 13)] == [None, None, 14, 16]  # int, LAN (0), +, y
    assert table.column("a.c", 2, 13) is None and table.column("a.c", 3, 5) is None


def test_only_the_lines_a_location_names_are_aligned(monkeypatch: pytest.MonkeyPatch) -> None:
    """acl_long's 64 rule lines differ from their source (``NF_IPV4`` calls), and aligning them all
    was a seventh of its analysis, though no message names them: lines are aligned when asked."""
    from explorer.frontend import columns
    from explorer.symbex import analyze

    aligned = []
    real = columns._aligned_line
    monkeypatch.setattr(columns, "_aligned_line", lambda pre, source: aligned.append(source) or real(pre, source))
    analysis = analyze(str(ROOT / "tests" / "nfs" / "acl_long.c"))
    assert analysis.paths and not any("NF_IPV4" in line for line in aligned), aligned


def test_columns_are_the_source_columns_past_macros_and_blanks(tmp_path: Path) -> None:
    """pycparser counts columns in the preprocessed line (LAN is 0 there, NF_DROP (-1), runs of
    blanks one blank): a call after a macro on its line was placed a few columns off, and so was
    every message about it (explain's call text started mid-token). Each location is now the
    source column of the token it names; a call out of a macro's expansion is placed at the
    macro's name."""
    from explorer.explain import call_text
    from explorer.symbex import analyze

    nf = str(ROOT / "tests" / "nfs" / "macro_columns.c")
    lines = Path(nf).read_text().splitlines()
    analysis = analyze(nf)
    seen = set()
    for path in analysis.paths:
        for access in path.accesses:
            loc = access.location
            assert lines[loc.line - 1][loc.col - 1:].startswith(access.call), (access.call, str(loc))
            assert call_text(loc.file, loc.line, loc.col).startswith(access.call + "(")
            seen.add(access.call)
    assert {"nf_expire_items", "nf_map_get", "nf_dchain_rejuvenate_index"} <= seen
    shift = write(tmp_path, NF.replace("return device == LAN ? 1 : 0;",
                                       "return device == LAN ? 1 : (int)(1u << nf_ipv4_header(packet, len)->ttl);"))
    with pytest.raises(Exception) as error:
        analyze(str(shift))
    line = shift.read_text().splitlines()[error.value.location.line - 1]
    assert line[error.value.location.col - 1:].startswith("nf_ipv4_header(packet, len)->ttl")  # the shift count
    expanded = write(tmp_path, "#define MAKE(m) nf_map_allocate(4, 64, &(m))\n" + NF.replace(
        "nf_map_allocate(4, CAPACITY, &flows)", "MAKE(flows)"), "expanded.c")
    place = analyze(str(expanded)).object("flows").location
    assert expanded.read_text().splitlines()[place.line - 1][place.col - 1:].startswith("MAKE(flows)")


@pytest.mark.dpdk
@pytest.mark.parametrize("body", [
    "static int x __attribute__((unused));\n",
    "static inline __attribute__((always_inline)) int twice(int a) { return 2 * a; }\n",
    "__attribute__((__noinline__, cold)) int f(int a __attribute__ ((unused))) { return 1; }\n",
    "int g(int a)\n  __attribute__((\n    warn_unused_result));\n",
    "[[maybe_unused]] static int y;\n[[gnu::always_inline, nodiscard]] static inline int h(int a) { return a; }\n",
])
def test_attributes_that_change_no_layout_or_meaning_are_read_past(tmp_path: Path, body: str) -> None:
    """``unused``, ``always_inline`` and the like were refused with every ``__attribute__``."""
    assert _outcome(write(tmp_path, CONFIGURABLE + body), {}) == (("ok", 2), ("ok", 2))


@pytest.mark.parametrize("mark", ["__attribute__((fallthrough));", "[[fallthrough]];", "__attribute__((__fallthrough__));"])
def test_a_fallthrough_attribute_reads_as_the_comment_it_stands_for(tmp_path: Path, mark: str) -> None:
    """``__attribute__((fallthrough));`` ended the case as a call to an unknown function
    ``__attribute__()``, and C23's ``[[fallthrough]];`` (which gcc takes) as "attributes require C23"."""
    from explorer.symbex import analyze

    nf = ('#include "nf.h"\nbool nf_init(void) { return true; }\n'
          "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
          "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return 1 - device;\n"
          "  int v = 1 - device;\n  switch (ip->protocol) {\n  case 1:\n    v = NF_DROP;\n    MARK\n"
          "  case 2:\n    v = v == NF_DROP ? NF_DROP : 0;\n    break;\n  }\n  return v;\n}\n")
    marked = analyze(write(tmp_path, nf.replace("MARK", mark), "marked.c"))
    plain = analyze(write(tmp_path, nf.replace("MARK", "/* fall through */"), "plain.c"))
    assert [(p.verdict.to_dict(), p.condition_text) for p in marked.paths] == \
        [(p.verdict.to_dict(), p.condition_text) for p in plain.paths]


def test_a_call_after_an_attribute_keeps_its_source_column(tmp_path: Path) -> None:
    """The attribute is blanked at its own columns: what follows it on the line is where it was."""
    from explorer.symbex import analyze

    path = write(tmp_path, '#include "nf.h"\nstatic struct nf_map *m;\nbool nf_init(void) { return true; }\n'
                           "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                           "  int i __attribute__((unused)) = 0; nf_map_allocate(4, 4, &m);\n  return 0;\n}\n")
    with pytest.raises(NfxError, match="allocated only by nf_init") as caught:
        analyze(path)
    assert (caught.value.location.line, caught.value.location.col) == (5, 38)


def test_inline_key_shards_like_fw_ifelse() -> None:
    from explorer import pipeline

    nfs = ROOT / "tests" / "nfs"
    inline, plain = (pipeline.solve(nfs / f"{nf}.c", quality=False) for nf in ("inline_key", "fw_ifelse"))
    assert inline.strategy == plain.strategy == "shared-nothing"
    assert [(o.decision, o.fields) for o in inline.sharding.objects] == \
        [(o.decision, o.fields) for o in plain.sharding.objects]


@pytest.mark.parametrize("shape", ["else-if", "blocks"])
def test_code_nested_past_the_parser_is_refused_where_it_gave_up(tmp_path: Path, shape: str) -> None:
    """A generated rule list as an else-if chain of 2,000 branches (or blocks nested 900 deep) was
    refused with the file name alone ('the code is nested too deeply to parse'): the error now
    points at the line the parser had reached, inside the chain, and says what to write instead.
    (The engine raises Python's recursion limit when imported: the parser takes some 1,300
    branches, whatever the process ran before.)"""
    import explorer

    assert sys.getrecursionlimit() >= explorer.RECURSION_LIMIT
    if shape == "else-if":
        body = "\n".join(f"  {'else ' if i else ''}if (len == {i + 60}) v = {i % 2 - 1};" for i in range(2000))
    else:
        body = "".join(f"  if (len > {i}) {{\n" for i in range(900)) + "  v = 0;\n" + "  }\n" * 900
    path = write(tmp_path, '#include "nf.h"\nbool nf_init(void) { return true; }\n'
                           "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                           f"  int v = 1 - device;\n{body}\n  return v;\n}}\n")
    with pytest.raises(CSyntaxError) as caught:
        parse_nf(path)
    where = caught.value.location
    assert where is not None and where.file == str(path) and 5 < where.line < 5 + 2000, str(caught.value)
    assert "nested too deeply to parse here" in caught.value.message
    assert "const table walked by a loop" in caught.value.message


def test_the_stages_of_one_command_parse_the_nf_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nfx check parsed the NF 7 times (two analyses, two plans and the explainer reading its default
    macros, the build, codegen): stages that only read the AST share one parse of the same text, the
    macros are read without parsing, and codegen, which renames calls in place, gets its own."""
    from explorer import pipeline
    from explorer.codegen.planning import overrides_of
    from explorer.frontend import parsed as parsed_module

    parses: list[str] = []
    real = parsed_module.parse_text
    monkeypatch.setattr(parsed_module, "parse_text", lambda text, *rest: parses.append(text) or real(text, *rest))
    nf = write(tmp_path, NF)
    first = pipeline.analyze(nf)
    second = pipeline.analyze(nf)
    assert overrides_of(str(nf), (("CAPACITY", "64"), ("LAN", "0"))) == (("CAPACITY", "64"),)
    assert [p.to_dict() for p in first.paths] == [p.to_dict() for p in second.paths] and len(parses) == 1
    assert parse_nf(nf).ast is parse_nf(nf).ast and len(parses) == 1
    private = parse_nf(nf, private=True)  # one to change: parsed again, not shared
    assert private.ast is not parse_nf(nf).ast and len(parses) == 2
    pipeline.analyze(nf, {"CAPACITY": "64"})  # other defines, other text
    nf.write_text(NF.replace("1 : 0", "0 : 1"))  # other contents
    assert pipeline.analyze(nf).paths[0].verdict != first.paths[0].verdict and len(parses) == 4
