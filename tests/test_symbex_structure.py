"""The path explorer's shape: one model per nf.h function, small classes, no private imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from explorer.errors import UnsupportedError
from explorer.state_api import KINDS, OTHER_CALLS, STATE_CALLS
from explorer.symbex import analyze
from explorer.symbex.models import MODELS

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "explorer"
MAX_CLASS_LINES = 400


def test_every_nf_h_function_has_exactly_one_model() -> None:
    wanted = set(KINDS) | set(STATE_CALLS) | set(OTHER_CALLS)
    assert set(MODELS) == wanted
    names = [name for model in {id(m): m for m in MODELS.values()}.values() for name in model.names]
    assert len(names) == len(set(names))


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(ENGINE.rglob("*.py"))]


def test_no_engine_class_is_longer_than_400_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for p, tree in _modules() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not long


def test_the_path_explorer_imports_no_private_name() -> None:
    private = [f"{p.relative_to(ROOT)}: {alias.name} from {node.module}"
               for p, tree in _modules() if "symbex" in p.parts or p.name == "graph.py"
               for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name.startswith("_")]
    assert not private


def test_every_symbex_module_says_what_it_does() -> None:
    missing = [str(p.relative_to(ROOT)) for p, tree in _modules()
               if "symbex" in p.parts and not ast.get_docstring(tree)]
    assert not missing


@pytest.mark.parametrize("statement", ["break", "continue"])
def test_break_outside_a_loop_points_at_the_statement(statement: str, tmp_path: Path) -> None:
    path = tmp_path / "stray.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    f"static int helper(int x) {{ if (x) {statement}; return x; }}\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  for (int i = 0; i < 2; i++) helper(i);\n  return 0;\n}\n")
    with pytest.raises(UnsupportedError) as err:
        analyze(path)
    assert err.value.message == f"{statement} outside a loop or switch in helper()"
    assert (err.value.location.line, err.value.location.col) == (3, 35)  # the statement, inside helper
