"""Fuzzing the analyzer with seeded mutations of the sample NFs.

Every mutation (truncation, deleted / swapped / duplicated words, deleted lines, and inserted
unknown library calls, recursion, unbounded loops and pointer arithmetic past a header) must end in
a valid Analysis or an NfxError, never another exception, and quickly. The inserted constructs must
be reported as exactly what they are. Mutations work on whitespace-separated words and lines (no
regular expressions over C).
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from explorer import ir
from explorer.errors import NfxError, UnsupportedError
from explorer.symbex import analyze
from explorer.symbex import path_search as explorer_module
from explorer.symbex import path_solver as solver_module

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c"))
MUTATIONS_PER_NF = 32
SLOWEST_ALLOWED = 15.0  # seconds for one mutated NF (the exploration is capped at 10 s here)

INSERTIONS = {
    "unknown call": ("", "  nf_map_frobnicate(0);\n", "call to unknown function nf_map_frobnicate()"),
    "recursion": ("static int nfx_fuzz_rec(int n) { return n ? nfx_fuzz_rec(n - 1) : 0; }\n",
                  "  if (nfx_fuzz_rec(2)) return NF_DROP;\n", "recursive call to nfx_fuzz_rec()"),
    "unbounded loop": ("", "  for (uint16_t nfx_i = 0; nfx_i < len; nfx_i++) {}\n",
                       "the loop's condition depends on packet or state data"),
    "past the header": ("", "  { struct nf_ipv4_hdr *nfx_h = nf_ipv4_header(packet, len);\n"
                            "    if (nfx_h != NULL && ((uint8_t *)nfx_h)[24] == 1) return NF_DROP; }\n",
                        "past the IPv4 header"),
}


def _insert(source: str, helper: str, statement: str) -> str:
    """``helper`` before nf_process, ``statement`` first in its body."""
    start = source.index("int nf_process(")
    body = source.index("{", start) + 1
    return source[:start] + helper + source[start:body] + "\n" + statement + source[body:]


def _mutate(source: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of the code (the part after the leading comment, from the first #include)."""
    start = source.index("#include")
    head, code = source[:start], source[start:]
    words = code.split(" ")
    kind = rng.choice(["truncate", "delete", "swap", "duplicate", "replace", "line"])
    if kind == "truncate":
        return kind, head + code[:rng.randrange(len(code))]
    if kind == "line":
        lines = code.split("\n")
        del lines[rng.randrange(len(lines))]
        return kind, head + "\n".join(lines)
    i = rng.randrange(len(words) - 1)
    if kind == "delete":
        del words[i]
    elif kind == "swap":
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "duplicate":
        words.insert(i, words[i])
    else:
        words[i] = rng.choice(words)
    return kind, head + " ".join(words)


def _outcome(path: Path) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        analysis = analyze(path)
    except NfxError as error:
        assert str(error), "an NfxError without a message"
        return type(error).__name__, time.perf_counter() - start
    assert isinstance(analysis, ir.Analysis)
    analysis.to_dict()  # the JSON view works too
    return "ok", time.perf_counter() - start


@pytest.fixture(autouse=True)
def _short_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explorer_module, "MAX_SECONDS", 10.0)
    monkeypatch.setattr(solver_module, "TIMEOUT_MS", 5_000)


@pytest.mark.parametrize("nf", SAMPLES)
def test_random_mutations_end_in_an_analysis_or_an_nfx_error(nf: str, tmp_path: Path) -> None:
    source = (ROOT / "sample_nfs" / f"{nf}.c").read_text()
    rng = random.Random(f"fuzz-{nf}")
    seen: dict[str, int] = {}
    for k in range(MUTATIONS_PER_NF):
        kind, text = _mutate(source, rng)
        path = tmp_path / f"{nf}_{k}.c"
        path.write_text(text)
        try:
            outcome, seconds = _outcome(path)
        except Exception as exc:  # noqa: BLE001 - this is what the test is about
            pytest.fail(f"mutation {k} ({kind}) of {nf}.c raised {type(exc).__name__}: {exc}\n"
                        f"reproduce: {path}")
        assert seconds < SLOWEST_ALLOWED, f"mutation {k} ({kind}) of {nf}.c took {seconds:.1f} s"
        seen[outcome] = seen.get(outcome, 0) + 1
    assert sum(seen.values()) == MUTATIONS_PER_NF
    assert set(seen) <= {"ok", "CSyntaxError", "UnsupportedError", "ConfigError"}, seen


@pytest.mark.parametrize("nf", SAMPLES)
@pytest.mark.parametrize("construct", sorted(INSERTIONS))
def test_inserted_constructs_are_reported_as_what_they_are(nf: str, construct: str, tmp_path: Path) -> None:
    helper, statement, words = INSERTIONS[construct]
    path = tmp_path / f"{nf}.c"
    path.write_text(_insert((ROOT / "sample_nfs" / f"{nf}.c").read_text(), helper, statement))
    with pytest.raises(UnsupportedError) as err:
        analyze(path)
    assert words in err.value.message
    assert err.value.location is not None and err.value.location.file == str(path)
