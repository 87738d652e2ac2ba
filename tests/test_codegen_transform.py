"""The NF rewritten for each strategy as edits of the author's own text: every comment, macro name and
line of layout kept, the diff against the input only the strategy's edits, edit points found through
pycparser's coordinates (macro expansions refused with their location), and the edited text parsed
again and checked against the AST the strategy asks for.

Regenerate the golden diffs with NFX_UPDATE_GOLDEN=1 (then review them)."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from explorer import build, pipeline
from explorer.codegen import parallel_plan, render, write_project
from explorer.codegen.printer import rendered
from explorer.codegen.source_edits import Edit, apply_edits, arguments, first_code_offset, source_tokens, \
    unified_diff
from explorer.codegen.transform import PROLOGUE, nf_ast, transform
from explorer.errors import GenerateError
from golden import compare

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "codegen"
SAMPLES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")
SHARED_NOTHING = ("nop", "sbridge", "pol", "fw", "nat", "cl", "psd")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # sample paths in plans are relative, as users type them


@functools.lru_cache(maxsize=None)
def _solution(source: str, locks: bool, cores: int = 4, defines: tuple = ()):
    return pipeline.solve(source, dict(defines), cores=cores, strategy="locks" if locks else "auto")


def plan(source: str, strategy: str, cores: int = 4, defines: tuple = ()):
    if "/" not in source:
        source = f"sample_nfs/{source}.c"
    s = _solution(source, strategy in ("locks", "tm"), cores, defines)
    return parallel_plan(s, strategy, None if strategy == "seq" else cores)


def cases():
    for nf in SAMPLES:
        for strategy in ("seq", "sn", "locks", "tm"):
            if strategy != "sn" or nf in SHARED_NOTHING:
                yield nf, strategy


def undo(line: str) -> str:
    """A line of a generated nf.c with the strategies' edits taken back."""
    line = line.replace(" _Thread_local", "").replace("_Thread_local ", "")
    line = line.replace("nf_sn_allocate_new_index", "nf_dchain_allocate_new_index").replace("nf_par_", "nf_")
    line = line.replace("nf_rep_", "nf_")
    if "nf_pool_dchain_allocate(" in line:  # nf_pool_dchain_allocate(POOL, ...) -> nf_dchain_allocate(...)
        start = line.index("nf_pool_dchain_allocate(")
        line = line[:start] + "nf_dchain_allocate(" + line[line.index(", ", start) + 2:]
    for wrapper in ("nf_sn_capacity(", "nf_pool_capacity("):
        while wrapper in line:
            start = line.index(wrapper)
            inner = start + len(wrapper)
            depth, k = 0, inner
            while depth or line[k] != ")":
                depth += {"(": 1, ")": -1}.get(line[k], 0)
                k += 1
            line = line[:start] + line[inner:k] + line[k + 1:]
    return line


def identifiers(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in source_tokens(text, "x.c"):
        counts[t.value] = counts.get(t.value, 0) + 1
    return counts


# ---- the samples: the author's text, and the strategy's edits only ----------------------------

@pytest.mark.parametrize("nf,strategy", list(cases()))
def test_nf_c_is_the_input_with_the_strategy_s_edits_only(nf, strategy):
    p = plan(nf, strategy)
    original = Path(p.source).read_text()
    result = rendered(p)
    nf_c = result.files["nf.c"].decode()
    lines = nf_c.splitlines(keepends=True)
    prologue = PROLOGUE.format(strategy=strategy)
    assert lines.count(prologue) == 1
    lines.remove(prologue)
    # every other line is the input's line, or the input's line with the strategy's edits
    assert [undo(line) for line in lines] == original.splitlines(keepends=True)
    changed = sum(1 for line in lines if undo(line) != line)
    assert (changed == 0) == (strategy == "seq" or nf == "nop")
    # every comment and every macro name survives, as often as the author wrote it
    before, after = identifiers(original), identifiers(nf_c)
    for name in [n for n, _ in p.defines] + ["NULL", "NF_DROP", "NF_FLOOD", "bool", "true", "false"]:
        assert after.get(name, 0) == before.get(name, 0), name
    comments = [line[line.index("/*"):] for line in original.splitlines() if "/*" in line]
    assert all(c in nf_c for c in comments)
    # the diff the engine returns is the one in the README
    assert result.diff == unified_diff(original, nf_c, p.source, "nf.c")
    assert result.diff in result.files["README.md"].decode()


@pytest.mark.parametrize("nf,strategy", [("fw", "sn"), ("nat", "sn"), ("lb", "locks"), ("bridge", "locks")])
def test_the_diff_matches_golden(nf, strategy):
    compare(rendered(plan(nf, strategy)).diff, GOLDEN / f"{nf}-{strategy}.diff")


def test_sn_edits():
    nf = transform(plan("fw", "sn"))
    for kind, handle in (("map", "flows"), ("vector", "keys"), ("dchain", "chain")):
        assert f"static _Thread_local struct nf_{kind} *{handle};\n" in nf.text
    assert "nf_map_allocate(sizeof(struct flow_key), nf_sn_capacity(FW_CAPACITY), &flows)" in nf.text
    assert "nf_dchain_allocate(nf_sn_capacity(FW_CAPACITY), &chain)" in nf.text
    assert "nf_sn_allocate_new_index(chain, &index, now)" in nf.text
    assert "return WAN; /* table full: let the LAN's traffic out anyway */" in nf.text
    assert any("thread-local" in c and "flows" in c for c in nf.changes)
    sbridge = transform(plan("sbridge", "sn"))  # replicated tables keep their size
    assert "nf_sn_capacity" not in sbridge.text and "_Thread_local" in sbridge.text


def test_locks_edits():
    nf = transform(plan("bridge", "locks"))
    for call in ("nf_par_map_allocate", "nf_par_vector_allocate", "nf_par_dchain_allocate", "nf_par_vector_borrow",
                 "nf_par_vector_return", "nf_par_dchain_rejuvenate_index"):
        assert f"{call}(" in nf.text
    assert "nf_vector_borrow(" not in nf.text.replace("nf_par_vector_borrow(", "")
    assert "_Thread_local" not in nf.text  # one shared copy
    assert transform(plan("bridge", "tm")).text == nf.text.replace("the locks runtime", "the tm runtime")


def test_overrides_take_effect_through_nf_config_h(tmp_path):
    p = plan("fw", "sn", 2, (("FW_CAPACITY", "1024"),))
    assert p.overrides == (("FW_CAPACITY", "1024"),)
    project = write_project(p, tmp_path / "p")
    config = (project.folder / "nf_config.h").read_text()
    assert "#define FW_CAPACITY 1024\n" in config
    assert "nf_sn_capacity(FW_CAPACITY)" in (project.folder / "nf.c").read_text()  # the macro stays in nf.c
    # the compiler sees the analysed value: nf_config.h comes before the NF's #ifndef default
    done = subprocess.run(["gcc", "-E", "-P", f"-I{project.folder}", str(project.folder / "nf.c")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "nf_sn_capacity(1024)" in done.stdout and "65536" not in done.stdout


# ---- edit points: found through pycparser's coordinates, or refused where a macro hides them -----

HOSTS = """/* hosts: frames per LAN source host. */
#include "nf.h"

#ifndef CAPACITY
#define CAPACITY 1024
#endif
#define LAN 0
#define WAN 1
#define CHAIN struct nf_dchain

static struct nf_map *hosts;
struct nf_vector *counts; /* no static: one per core all the same */
static CHAIN *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(uint32_t),
                       /* one per host */ CAPACITY / 2 + (CAPACITY / 2),
                       &hosts)) {
    return false;
  }
  return nf_vector_allocate(sizeof(uint64_t), CAPACITY, &counts) && nf_dchain_allocate(CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL || device != LAN) {
    return device == LAN ? WAN : LAN;
  }
  int index;
  if (nf_map_get(hosts, &ip->src_addr, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) { return WAN; /* full */ }
    nf_map_put(hosts, &ip->src_addr, index);
  }
  uint64_t *count = nf_vector_borrow(counts, index); *count += 1; nf_vector_return(counts, index, count);
  return WAN;
}
"""


def _nf(tmp_path, text: str, name: str = "hosts.c") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def test_edits_keep_comments_macros_and_layout_around_them(tmp_path):
    source = _nf(tmp_path, HOSTS)
    sn = transform(plan(source, "sn", 2)).text
    assert "static _Thread_local struct nf_map *hosts;" in sn
    assert "_Thread_local struct nf_vector *counts; /* no static: one per core all the same */" in sn
    assert "static _Thread_local CHAIN *chain;" in sn  # a macro as the type: the edit goes after static
    assert "/* one per host */ nf_sn_capacity(CAPACITY / 2 + (CAPACITY / 2)),\n" in sn
    assert "nf_vector_allocate(sizeof(uint64_t), nf_sn_capacity(CAPACITY), &counts) && " \
           "nf_dchain_allocate(nf_sn_capacity(CAPACITY), &chain);" in sn
    assert "if (!nf_sn_allocate_new_index(chain, &index, now)) { return WAN; /* full */ }" in sn
    locks = transform(plan(source, "locks", 2)).text
    assert ("uint64_t *count = nf_par_vector_borrow(counts, index); *count += 1; "
            "nf_par_vector_return(counts, index, count);") in locks  # two edits on one line


def test_an_odd_file_name_keeps_its_edits(tmp_path):
    """gcc escapes '"' and '\\' in its line markers; the edits must still find the file."""
    source = _nf(tmp_path, HOSTS, 'we"ird\\name.c')
    nf = transform(plan(source, "sn", 2))
    assert "static _Thread_local struct nf_map *hosts;" in nf.text and f"--- {source}\n" in nf.diff


def test_a_crlf_file_stays_crlf(tmp_path):
    source = _nf(tmp_path, HOSTS.replace("\n", "\r\n"))
    text = transform(plan(source, "sn", 2)).text
    assert "static _Thread_local struct nf_map *hosts;\r\n" in text
    assert text.count("\r\n") == HOSTS.count("\n")  # the prologue line is the only one with a bare \n
    assert text.count("\n") == HOSTS.count("\n") + 1


MACRO_CASES = {
    "a renamed call in a macro": (
        ("uint64_t *count = nf_vector_borrow(counts, index);",
         "uint64_t *count = BORROW(index);"),
        "#define BORROW(i) nf_vector_borrow(counts, i)\n", "locks", "nf_vector_borrow"),
    "an allocation's arguments from a macro": (
        ("nf_dchain_allocate(CAPACITY, &chain)", "nf_dchain_allocate(CHAIN_ARGS)"),
        "#define CHAIN_ARGS CAPACITY, &chain\n", "sn", "arguments of this nf_dchain_allocate"),
    "a whole allocation in a macro": (
        ("nf_dchain_allocate(CAPACITY, &chain)", "ALLOC_CHAIN()"),
        "#define ALLOC_CHAIN() nf_dchain_allocate(CAPACITY, &chain)\n", "sn", "capacity of chain"),
    "a handle declared by a macro": (
        ("static CHAIN *chain;", "HANDLE(chain);"),
        "#define HANDLE(name) static struct nf_dchain *name\n", "sn", "declaration of chain"),
}


@pytest.mark.parametrize("case", list(MACRO_CASES))
def test_an_edit_point_inside_a_macro_expansion_is_refused_with_its_location(tmp_path, case):
    (old, new), define, strategy, what = MACRO_CASES[case]
    text = HOSTS.replace(old, new).replace("#define LAN 0\n", define + "#define LAN 0\n")
    line = max(i for i, t in enumerate(text.splitlines(), 1) if new in t and not t.startswith("#define"))
    p = plan(_nf(tmp_path, text), strategy, 2)
    with pytest.raises(GenerateError, match="macro expansion") as caught:
        transform(p)
    assert what in str(caught.value)
    assert caught.value.location.file == p.source and caught.value.location.line == line


@pytest.mark.parametrize("lost,message", [("nf_sn_allocate_new_index", "do not give the NF the strategy needs"),
                                          ("nf_sn_capacity(", "do not parse")])
def test_the_edited_text_is_checked_against_the_ast_the_strategy_needs(tmp_path, monkeypatch, lost, message):
    p = plan(_nf(tmp_path, HOSTS), "sn", 2)

    def lose_one(text, edits):  # an edit lost on the way must not go unnoticed
        edits = list(edits)
        edits.remove(next(e for e in edits if e.text == lost))
        return apply_edits(text, edits)

    monkeypatch.setattr("explorer.codegen.transform.apply_edits", lose_one)
    with pytest.raises(GenerateError, match=f"{message}.*nothing was generated"):
        transform(p)


def test_the_nf_s_own_header_is_edited_and_copied(tmp_path):
    header = ("/* tables.h: the handles of hosts.c */\n#ifndef TABLES_H\n#define TABLES_H\n"
              "static struct nf_map *hosts;\n#endif\n")
    (tmp_path / "tables.h").write_text(header)
    text = HOSTS.replace("static struct nf_map *hosts;\n", '#include "tables.h"\n')
    p = plan(_nf(tmp_path, text), "sn", 2)
    files = render(p)
    assert files["tables.h"].decode() == header.replace("static struct", "static _Thread_local struct")
    result = rendered(p)
    assert "+++ tables.h" in result.diff and "`tables.h`: the NF's own header (edited)" in \
        result.files["README.md"].decode()


def test_a_header_in_a_subfolder_keeps_its_path_in_the_project(tmp_path):
    """#include "sub/tables.h" must find the (edited) header in the project as it did beside the NF."""
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "size.h").write_text("#define TABLE_KEY 4\n")
    (tmp_path / "sub" / "tables.h").write_text('#include "deeper/size.h"\nstatic struct nf_map *hosts;\n')
    p = plan(_nf(tmp_path, HOSTS.replace("static struct nf_map *hosts;\n", '#include "sub/tables.h"\n')), "sn", 2)
    result = rendered(p)
    assert result.files["sub/tables.h"].decode() == ('#include "deeper/size.h"\n'
                                                     "static _Thread_local struct nf_map *hosts;\n")
    assert result.files["sub/deeper/size.h"] == b"#define TABLE_KEY 4\n"
    assert "+++ sub/tables.h" in result.diff and "`sub/tables.h`: the NF's own header (edited)" in \
        result.files["README.md"].decode()


def test_headers_the_project_cannot_hold_are_refused(tmp_path):
    (tmp_path / "nf_plan.h").write_text("static struct nf_map *hosts;\n")
    p = plan(_nf(tmp_path, HOSTS.replace("static struct nf_map *hosts;\n", '#include "nf_plan.h"\n')), "sn", 2)
    with pytest.raises(GenerateError, match="a name the project needs"):
        render(p)


@pytest.mark.dpdk
def test_a_project_with_headers_in_subfolders_builds_with_its_makefile(tmp_path):
    from explorer.codegen.compile import build_program

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tables.h").write_text("static struct nf_map *hosts;\n")
    source = _nf(tmp_path, HOSTS.replace("static struct nf_map *hosts;\n", '#include "sub/tables.h"\n'))
    folder = write_project(plan(source, "locks", 2), tmp_path / "out").folder
    done = subprocess.run(["make", "-s", "-C", str(folder), "nfx-replay"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert build_program(folder).is_file()
    # The Makefile sees the subfolder's header: editing it rebuilds nf.o.
    before = (folder / "nf.o").stat().st_mtime_ns
    (folder / "sub" / "tables.h").write_text("static _Thread_local struct nf_map *hosts; /* edited */\n")
    os.utime(folder / "sub" / "tables.h", ns=(before + 10**9, before + 10**9))
    done = subprocess.run(["make", "-s", "-C", str(folder), "nfx-replay"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (folder / "nf.o").stat().st_mtime_ns > before


@pytest.mark.dpdk
def test_edited_test_nfs_build_with_warnings_as_errors(tmp_path):
    source = _nf(tmp_path, HOSTS.replace("\n", "\r\n"))
    cflags, _ = build.dpdk_flags()
    for strategy in ("seq", "sn", "locks"):
        folder = write_project(plan(source, strategy, 2), tmp_path / strategy).folder
        done = subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{folder}", *cflags, "-c", str(folder / "nf.c"), "-o",
                               str(tmp_path / f"{strategy}.o")], capture_output=True, text=True)
        assert done.returncode == 0, f"{strategy}:\n{done.stderr}"


@pytest.mark.dpdk
def test_sn_shares_const_tables_and_keeps_the_rest_per_core(tmp_path):
    """A const object cannot change, so under sn the cores share one copy: a 2 Mi-entry table was
    _Thread_local, once per core. A pointer to const can change, and stays one per core."""
    text = (ROOT / "tests" / "nfs" / "dscp_remark.c").read_text().replace(
        "static struct nf_map *sources;",
        "static const uint16_t *const FIRST = TRUSTED_PORTS;\n"
        "static const uint8_t *last_phb;\nstatic struct nf_map *sources;").replace(
        "nf_ntohs(port) == TRUSTED_PORTS[i]", "nf_ntohs(port) == FIRST[i] && last_phb == NULL")
    source = _nf(tmp_path, text, "dscp.c")
    nf = transform(plan(source, "sn", 2))
    for shared in ("static const uint8_t PHB[64] = {", "static const uint8_t ACTION[4][2] = {",
                   "static const uint16_t TRUSTED_PORTS[] = {", "static const uint16_t *const FIRST = TRUSTED_PORTS;"):
        assert shared in nf.text
    for per_core in ("static _Thread_local const uint8_t *last_phb;", "static _Thread_local struct nf_map *sources;"):
        assert per_core in nf.text
    assert "shared, read-only: PHB, ACTION, TRUSTED_PORTS, FIRST" in nf.changes
    folder = write_project(plan(source, "sn", 2), tmp_path / "sn").folder
    cflags, _ = build.dpdk_flags()
    done = subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{folder}", *cflags, "-c", str(folder / "nf.c"), "-o",
                           str(tmp_path / "sn.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---- the NFs the analysis accepts but the rewrite cannot place ---------------------------------

ODD_NF = """#include "nf.h"
static struct nf_map *table;
static struct nf_dchain *chain;
static bool alloc_map(struct nf_map **out) { return nf_map_allocate(4, 64, out); }
bool nf_init(void) { return alloc_map(&table) && nf_dchain_allocate(64, &chain); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  int index;
  if (!nf_map_get(table, &ip->src_addr, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(table, &ip->src_addr, index);
  }
  return device == 0 ? 1 : 0;
}
"""


HELPER_NF = ODD_NF.replace("bool nf_init(void)", "static bool alloc_chain(struct nf_dchain **out) { return "
                           "nf_dchain_allocate(64, out); }\nbool nf_init(void)") \
    .replace("nf_dchain_allocate(64, &chain)", "alloc_chain(&chain)")


def test_an_allocation_in_a_helper_is_found_by_its_location(tmp_path):
    """``alloc_chain(&chain)`` allocates through the helper's ``out``: the plan's location of the
    chain's allocation names the call in the helper, whose capacity sn divides (it was refused)."""
    p = plan(_nf(tmp_path, HELPER_NF, "odd.c"), "sn", 2)
    assert p.object("chain").per_core != p.object("chain").capacity
    assert p.object("table").per_core == p.object("table").capacity
    text = transform(p).text
    assert "return nf_dchain_allocate(nf_sn_capacity(64), out); }" in text
    assert "return nf_map_allocate(4, 64, out); }" in text


TWO_WAYS_NF = HELPER_NF.replace("static struct nf_dchain *chain;",
                                "static struct nf_dchain *chain;\nstatic struct nf_dchain *spare;") \
    .replace("alloc_chain(&chain)", "alloc_chain(&chain) && alloc_chain(&spare)")


def test_one_allocation_call_for_objects_the_plan_treats_differently_is_an_error_with_a_location(tmp_path):
    """The helper allocates chain (each core a share) and spare (unused: whole on every core); its
    one capacity argument cannot be both."""
    p = plan(_nf(tmp_path, TWO_WAYS_NF, "odd.c"), "sn", 2)
    assert p.object("spare").per_core == p.object("spare").capacity
    with pytest.raises(GenerateError, match="allocates chain, spare, which the sn plan treats differently") \
            as caught:
        transform(p)
    assert caught.value.location is not None and caught.value.location.file == p.source
    assert caught.value.location.line == 6


def test_a_static_initialized_with_a_thread_local_s_address_is_refused_with_its_location(tmp_path):
    """sn makes every variable with static storage _Thread_local; ``static struct t *T = &state;``
    then has no constant initializer (gcc refused the generated nf.c, naming the project's file)."""
    pointer = "static struct nf_dchain *chain;\nstatic struct nf_dchain **const C = &chain;"
    source = _nf(tmp_path, ODD_NF.replace("static struct nf_dchain *chain;", pointer)
                 .replace("nf_dchain_allocate_new_index(chain,", "nf_dchain_allocate_new_index(*C,"), "odd.c")
    with pytest.raises(GenerateError, match="C is initialized with the address of chain: the sn strategy gives "
                                            "every core its own chain") as caught:
        transform(plan(source, "sn", 2))
    assert caught.value.location.file == source and caught.value.location.line == 4
    assert "nf_dchain_allocate_new_index(*C," in transform(plan(source, "locks", 2)).text


def test_taking_a_rewritten_function_s_address_is_refused(tmp_path):
    """The analyser refuses function pointers; should one reach the rewrite anyway (here: the file
    changed after the analysis), it must not miss a call made through it."""
    source = _nf(tmp_path, ODD_NF.replace("alloc_map(&table)", "nf_map_allocate(4, 64, &table)"), "odd.c")
    p = plan(source, "locks", 2)
    Path(source).write_text(Path(source).read_text().replace(
        "static bool alloc_map(struct nf_map **out) { return nf_map_allocate(4, 64, out); }",
        "static void *(*borrow)(struct nf_vector *, int) = nf_vector_borrow;"))
    with pytest.raises(GenerateError, match="nf_vector_borrow is used other than by calling it") as caught:
        transform(p)
    assert caught.value.location.line == 4


def test_a_changed_source_is_detected(tmp_path):
    source = _nf(tmp_path, ODD_NF.replace("alloc_map(&table)", "nf_map_allocate(4, 64, &table)"), "odd.c")
    p = plan(source, "sn", 2)
    Path(source).write_text(Path(source).read_text().replace('#include "nf.h"\n', '#include "nf.h"\n#define EXTRA 3\n'))
    with pytest.raises(GenerateError, match="changed since it was analysed"):
        nf_ast(p)


# ---- source_edits: tokens, arguments, edits and diffs ---------------------------------------------

TRICKY = ('/* a "quote */ #define X 1\n'
          '#define Y "/* not a comment" \\\n'
          '  continued\n'
          'char *s = "// not a comment /*"; char c = \'"\'; // a comment with a \\\n'
          'continuation\n'
          'int f(int a, int b) { return g((a, b), h[1, 2], a); }\n')


def test_tokens_skip_comments_and_directives_but_not_literals():
    tokens = source_tokens(TRICKY, "t.c")
    values = [t.value for t in tokens]
    assert "Y" not in values and "continued" not in values and "continuation" not in values
    assert values[:4] == ["char", "*", "s", "="] and '"// not a comment /*"' in values and "'\"'" in values
    assert all(TRICKY[t.start:t.end] == t.value for t in tokens)
    assert first_code_offset(TRICKY) == TRICKY.index("#define X")  # a comment before '#' is blank space
    assert first_code_offset("/* see #1\n # 2 */\n  int x;\n") == len("/* see #1\n # 2 */\n  ")


def test_arguments_split_at_top_level_commas_only():
    tokens = source_tokens(TRICKY, "t.c")
    g = next(i for i, t in enumerate(tokens) if t.value == "g")
    args = arguments(tokens[g:])
    assert [" ".join(t.value for t in a) for a in args] == ["( a , b )", "h [ 1 , 2 ]", "a"]
    assert arguments(tokens[g - 1:]) is None  # "return g": not a name followed by '('


def test_apply_edits_refuses_overlaps_and_keeps_insertion_order():
    assert apply_edits("abc", [Edit("f", 1, 1, "X"), Edit("f", 1, 1, "Y"), Edit("f", 2, 3, "Z")]) == "aXYbZ"
    with pytest.raises(GenerateError, match="overlap"):
        apply_edits("abcdef", [Edit("f", 1, 4, "X"), Edit("f", 2, 3, "Y")])


def test_unified_diff_marks_a_missing_final_newline():
    diff = unified_diff("a\nb", "a\nc", "x.c", "nf.c")
    assert diff.startswith("--- x.c\n+++ nf.c\n") and "\\ No newline at end of file\n" in diff


def test_a_byte_order_mark_is_skipped_as_gcc_skips_it(tmp_path):
    """A UTF-8 BOM at the start of the NF or its header (editors on Windows write one): the
    analysis accepts it, so the rewrite must too, and the project keeps it where it was."""
    header = "\ufeffstatic struct nf_map *hosts;\n"
    (tmp_path / "tables.h").write_text(header, encoding="utf-8")
    source = _nf(tmp_path, "\ufeff" + HOSTS.replace("static struct nf_map *hosts;\n", '#include "tables.h"\n'))
    files = render(plan(source, "sn", 2))
    assert files["nf.c"].startswith("\ufeff".encode()) and b"nf_sn_" in files["nf.c"]
    assert files["tables.h"].decode() == "\ufeffstatic _Thread_local struct nf_map *hosts;\n"
