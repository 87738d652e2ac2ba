"""The front end: preprocessing with our own headers, configuration macros, parse errors at file:line:col."""
from __future__ import annotations

from pathlib import Path

import pytest
from pycparser import c_ast

from explorer.errors import ConfigError, CSyntaxError
from explorer.frontend import parse_nf
from explorer.ir import Location

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
    assert "unknown --define CAPACTIY" in str(err.value)
    assert "CAPACITY" in str(err.value) and "VERBOSE" in str(err.value)


def test_overriding_an_unguarded_define_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, NF)
    with pytest.raises(ConfigError) as err:
        parse_nf(path, {"LAN": "1"})
    assert f"{path}:5: LAN is defined unconditionally" in str(err.value)


@pytest.mark.parametrize("name", ["1ABC", "A-B", ""])
def test_a_bad_macro_name_is_a_config_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        parse_nf(write(tmp_path, NF), {name: "1"})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such NF file"):
        parse_nf(tmp_path / "nope.c", {})


@pytest.mark.parametrize("nf_devices,message", [("0", "between 1 and 64"), ("x", "integer constant")])
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


@pytest.mark.parametrize("body,line,col,words", [
    ("int x = ;\n", 3, 9, "syntax error"),
    ("int f(void) {\n  return 1 +\n    ;\n}\n", 5, 5, "syntax error"),
    ("int f(void) {\n  return 1;\n", 4, 12, "end of file"),
    ("int f(void) { int 3x; }\n", 3, 19, "syntax error"),
])
def test_parse_errors_point_at_the_nf_source(tmp_path: Path, body: str, line: int, col: int, words: str) -> None:
    path = write(tmp_path, '#include "nf.h"\n\n' + body)
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line) == (str(path), line)
    assert words in err.value.message


def test_errors_in_an_nf_header_point_into_that_header(tmp_path: Path) -> None:
    write(tmp_path, "\nstruct key { int a b; };\n", "key.h")
    path = write(tmp_path, '#include "nf.h"\n#include "key.h"\nint x;\n')
    with pytest.raises(CSyntaxError) as err:
        parse_nf(path, {})
    assert err.value.location == Location(str(tmp_path / "key.h"), 2, 20)
