"""gcc builds of an NF with the C runtime: the sequential harness ("seq") or the DPDK forwarder
("dpdk"), cached by a content hash of every input.

Configuration macros are found without reading C ourselves: gcc's preprocessor reports them.
``gcc -E -dD`` prints every ``#define`` where it happens, between line markers, so the names the
NF file itself defines are those printed while the marker names the NF file; running it again with
those names predefined shows which #defines are guarded by ``#ifndef`` (they disappear) and which
are fixed constants (they stay). ``gcc -E -dU`` prints ``#undef NAME`` for each macro tested
(``#ifdef``, ``#ifndef``, ``defined()``) while undefined; the names it prints for the NF minus
those it prints for nf.h alone are the ones the NF only tests. nf.h's own knobs are the names it
tests and then defines with a default value (NF_DEVICES).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from explorer.errors import BuildError, ConfigError
from explorer.ir import Location

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
INCLUDE_DIR = RUNTIME_DIR / "include"

BASE_FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11")
SANITIZERS = ("address", "undefined", "leak")
KINDS = {"seq": ("harness.c", "nfx-seq"), "dpdk": ("dpdk_main.c", "nfx-dpdk")}
ENTRY_POINTS = {
    "nf_init": "bool nf_init(void)",
    "nf_process": "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now)",
}


def _gcc_env() -> dict[str, str]:
    """gcc's messages in plain ASCII and English, whatever the user's locale."""
    return {**os.environ, "LC_ALL": "C"}


@dataclass(frozen=True)
class NfConfig:
    """What the preprocessor says about an NF under a set of --defines."""

    path: Path
    devices: int  # NF_DEVICES
    macros: tuple[str, ...]  # the configurable macro names, sorted
    defines: tuple[tuple[str, str], ...]  # the accepted --defines, sorted


def cache_dir() -> Path:
    """``$NFX_CACHE``, else ``~/.cache/nfx``."""
    return Path(os.environ.get("NFX_CACHE") or Path.home() / ".cache" / "nfx")


# ---- gcc and pkg-config ------------------------------------------------------------------------

def run_tool(argv: Sequence[str], *, input_text: Optional[str] = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(argv), input=input_text, capture_output=True, text=True, env=_gcc_env())
    except FileNotFoundError as error:
        raise BuildError(f"cannot run {argv[0]}: {error.strerror}") from None


@functools.lru_cache(maxsize=None)
def compiler_identity() -> str:
    """gcc's version and target: part of every cache key."""
    done = run_tool(["gcc", "--version"])
    target = run_tool(["gcc", "-dumpmachine"])
    if done.returncode != 0:
        raise BuildError("gcc does not work: " + (done.stderr.strip() or "gcc --version failed"))
    return done.stdout.splitlines()[0] + " " + target.stdout.strip()


@functools.lru_cache(maxsize=None)
def dpdk_flags() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(cflags, libs) of DPDK from pkg-config."""
    cflags = run_tool(["pkg-config", "--cflags", "libdpdk"])
    libs = run_tool(["pkg-config", "--libs", "libdpdk"])
    if cflags.returncode != 0 or libs.returncode != 0:
        raise BuildError("DPDK's development files were not found (pkg-config libdpdk failed); "
                         "install libdpdk-dev and pkg-config")
    return tuple(cflags.stdout.split()), tuple(libs.stdout.split())


def _sanitize_flags(sanitize: Optional[str | Sequence[str]]) -> tuple[str, ...]:
    if not sanitize:
        return ()
    names = sanitize.split(",") if isinstance(sanitize, str) else list(sanitize)
    unknown = sorted(set(names) - set(SANITIZERS))
    if unknown:
        raise ConfigError(f"unknown sanitizer {', '.join(unknown)}: choose from {', '.join(SANITIZERS)}")
    joined = ",".join(sorted(set(names)))
    # Misaligned loads are how x86 NFs read packets (the IPv4 header sits at offset 14) and how
    # DPDK's CRC hash reads keys: legal on this target, so UBSan's alignment check is left out.
    relaxed = ("-fno-sanitize=alignment",) if "undefined" in names else ()
    return (f"-fsanitize={joined}", *relaxed, "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")


# ---- diagnostics ---------------------------------------------------------------------------------

def _first_error(stderr: str, what: str) -> BuildError:
    """One BuildError from gcc's JSON diagnostics (-fdiagnostics-format=json): the first error
    with its file:line:col, and how many more there were."""
    errors = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        try:
            diagnostics = json.loads(line)
        except json.JSONDecodeError:
            continue
        errors.extend(d for d in diagnostics if d.get("kind") in ("error", "fatal error"))
    if not errors:
        text = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")]
        return BuildError(f"{what} failed: {text[0] if text else 'gcc gave no message'}")
    first = errors[0]
    message = first.get("message", "error")
    if first.get("option"):
        message += f" [{first['option']}]"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    location = None
    if first.get("locations"):
        caret = first["locations"][0].get("caret", {})
        if "file" in caret:
            location = Location(caret["file"], int(caret.get("line", 0)), int(caret.get("column", 0)))
    return BuildError(message, location=location)


def link_error(stderr: str) -> BuildError:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "undefined reference to" in ln:
            return BuildError("link failed: " + ln[ln.index("undefined reference to"):])
    for ln in lines:
        if "error" in ln:
            return BuildError("link failed: " + ln)
    return BuildError("link failed: " + (lines[0] if lines else "no message from the linker"))


# ---- configuration macros --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Define:
    file: str
    line: int
    name: str
    value: str


def _directives(text: str) -> tuple[list[_Define], list[str]]:
    """The #defines (with their file and line) and the #undef names of gcc -E -dD / -dU output.
    The text is gcc's output, whose shape gcc fixes: line markers ``# N "file" flags`` and one
    directive per line."""
    defines, undefs = [], []
    file, line = "", 0
    for raw in text.split("\n"):
        if raw.startswith("# ") and raw[2:3].isdigit():
            number, _, rest = raw[2:].partition(" ")
            if rest.startswith('"') and rest.rfind('"') > 0:
                file = rest[1:rest.rfind('"')].replace('\\"', '"').replace("\\\\", "\\")
            line = int(number)
            continue
        if raw.startswith("#define "):
            body = raw[len("#define "):]
            cut = min((i for i in (body.find(" "), body.find("(")) if i >= 0), default=len(body))
            defines.append(_Define(file, line, body[:cut], body[cut:].strip()))
        elif raw.startswith("#undef "):
            undefs.append(raw[len("#undef "):].strip())
        line += 1
    return defines, undefs


def _preprocess(source: str | Path, mode: str, defines: Sequence[str] = (), *, stdin: Optional[str] = None) -> str:
    argv = ["gcc", "-E", mode, "-std=gnu11", f"-I{INCLUDE_DIR}", "-fdiagnostics-format=json", *defines]
    argv += ["-x", "c", "-"] if stdin is not None else [str(source)]
    done = run_tool(argv, input_text=stdin)
    if done.returncode != 0:
        raise _first_error(done.stderr, f"preprocessing {source}")
    return done.stdout


def _reserved(name: str) -> bool:
    return name.startswith("__") or (name.startswith("_") and name[1:2].isupper())


@functools.lru_cache(maxsize=None)
def _nf_h_knobs() -> tuple[frozenset[str], frozenset[str]]:
    """(names tested while undefined by nf.h and the standard headers it includes, nf.h's knobs)."""
    wrapper = '#include "nf.h"\n'
    tested = frozenset(_directives(_preprocess("nf.h", "-dU", stdin=wrapper))[1])
    nf_h = str(INCLUDE_DIR / "nf.h")
    defined = {d.name for d in _directives(_preprocess("nf.h", "-dD", stdin=wrapper))[0]
               if d.file == nf_h and d.value}
    return tested, frozenset(tested & defined)


def configurable_macros(nf_path: str | Path) -> dict[str, Optional[Location]]:
    """The macros a --define may set, each with where the NF defines its default (None when the
    NF only tests it, or when nf.h provides it)."""
    return _macro_table(_existing(nf_path))[0]


_PROBE = "__nfx_probe__"


def _macro_table(path: Path) -> tuple[dict[str, Optional[Location]], dict[str, Location]]:
    """(configurable macros, macros the NF defines unconditionally), each sorted by name.

    A name the NF defines is configurable when predefining it (to a probe value) makes the NF's
    #define disappear, i.e. the #define sits under #ifndef NAME; constants such as LAN stay."""
    baseline_tested, knobs = _nf_h_knobs()
    configurable: dict[str, Optional[Location]] = {name: None for name in knobs}
    for name in _directives(_preprocess(path, "-dU"))[1]:
        if name not in baseline_tested and not _reserved(name):
            configurable.setdefault(name, None)
    own = {}
    for d in _directives(_preprocess(path, "-dD"))[0]:
        if d.file == str(path) and not _reserved(d.name):
            own.setdefault(d.name, Location(str(path), d.line, 1))
    fixed: dict[str, Location] = {}
    if own:
        try:
            probed = _preprocess(path, "-dD", [f"-D{name}={_PROBE}" for name in sorted(own)])
            still = {d.name for d in _directives(probed)[0] if d.file == str(path)}
        except BuildError:  # the probe value broke an #if: treat every such name as configurable
            still = set()
        for name, location in own.items():
            if name in still:
                fixed[name] = location
            else:
                configurable[name] = configurable.get(name) or location
    for name in fixed:
        configurable.pop(name, None)
    return dict(sorted(configurable.items())), dict(sorted(fixed.items()))


def _existing(nf_path: str | Path) -> Path:
    path = Path(nf_path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such NF source file")
    return path


def _check_defines(defines: Optional[Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    checked = []
    for name, value in sorted((defines or {}).items()):
        if not (name.isidentifier() and name.isascii()):
            raise ConfigError(f"--define {name}={value}: {name!r} is not a C identifier")
        value = str(value)
        if not value.strip() or "\n" in value:
            raise ConfigError(f"--define {name}: needs a one-line value (NAME=VALUE)")
        checked.append((name, value))
    return tuple(checked)


def _c_literals_to_python(text: str) -> str:
    """Rewrite C integer literals (suffixes U/L, octal) as Python ones; other text is kept."""
    out, i = [], 0
    while i < len(text):
        if text[i].isdigit() and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            body = text[i:j].rstrip("uUlL")
            if len(body) > 1 and body[0] == "0" and body[1] not in "xX":
                body = str(int(body, 8)) if body.isdigit() and "8" not in body and "9" not in body else "?"
            out.append(body)
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1), ast.Mod: lambda a, b: a % b,
              ast.LShift: lambda a, b: a << b, ast.RShift: lambda a, b: a >> b}


def _evaluate(node: ast.AST) -> int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not an integer constant")


def _int_constant(text: str) -> Optional[int]:
    """The value of a C integer constant expression made of literals, + - * / % << >> and
    parentheses (what a macro like NF_DEVICES expands to), or None."""
    try:
        return _evaluate(ast.parse(_c_literals_to_python(text).strip(), mode="eval"))
    except (SyntaxError, ValueError, ArithmeticError, RecursionError):
        return None


def nf_config(nf_path: str | Path, defines: Optional[Mapping[str, str]] = None) -> NfConfig:
    """Check the --defines against the NF's configurable macros and find NF_DEVICES.

    Raises ConfigError for an unknown name, or for a name the NF defines unconditionally (gcc would
    reject the redefinition); BuildError when the NF does not preprocess."""
    return _configure(nf_path, defines)[0]


def _configure(nf_path: str | Path, defines: Optional[Mapping[str, str]]) -> tuple[NfConfig, str]:
    """nf_config, plus the NF preprocessed with its defines (``-dD``: the cache key's text)."""
    path = _existing(nf_path)
    checked = _check_defines(defines)
    macros, fixed = _macro_table(path)
    for name, _ in checked:
        if name in fixed:
            raise ConfigError(f"--define {name}: {path} defines {name} unconditionally; wrap its "
                              f"#define in #ifndef {name} ... #endif to make it configurable",
                              location=fixed[name])
    unknown = [name for name, _ in checked if name not in macros]
    if unknown:
        known = ", ".join(macros) or "none"
        raise ConfigError(f"unknown --define {unknown[0]}: {path} neither defines nor tests it "
                          f"(its configurable macros: {known})")
    flags = [f"-D{name}={value}" for name, value in checked]
    final: dict[str, str] = {}
    preprocessed = _preprocess(path, "-dD", flags)
    requested = {name for name, _ in checked}
    for d in _directives(preprocessed)[0]:
        if d.file == str(path) and d.name in requested:
            raise ConfigError(f"--define {d.name}: {path} defines {d.name} unconditionally; wrap its "
                              f"#define in #ifndef {d.name} ... #endif to make it configurable",
                              location=Location(str(path), d.line, 1))
        final[d.name] = d.value
    devices = _int_constant(final.get("NF_DEVICES", ""))
    if devices is None and "NF_DEVICES" in final:
        probe = "NF_DEVICES\n"
        expanded = _preprocess(path, "-P", [*flags, "-imacros", str(path)], stdin=probe)
        lines = [ln for ln in expanded.splitlines() if ln.strip()]
        devices = _int_constant(lines[-1]) if lines else None
    if devices is None or not 1 <= devices <= 65535:
        raise ConfigError(f"{path}: NF_DEVICES must be an integer constant from 1 to 65535, "
                          f"not {final.get('NF_DEVICES', 'undefined')!r}")
    return NfConfig(path, devices, tuple(macros), checked), preprocessed


# ---- builds ------------------------------------------------------------------------------------------

def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _runtime_sources() -> bytes:
    """Every header and C file of the runtime, in name order: any change rebuilds everything."""
    files = sorted(RUNTIME_DIR.glob("*.[ch]")) + sorted(INCLUDE_DIR.glob("*.h"))
    return b"".join(f.name.encode() + b"\0" + f.read_bytes() for f in files)


def _compile_argv(source: Path, output: Path, flags: Sequence[str]) -> list[str]:
    return ["gcc", *BASE_FLAGS, "-fdiagnostics-format=json", *flags, "-c", str(source), "-o", str(output)]


def place_atomically(built: Path, final: Path) -> None:
    """Move a finished file into the cache atomically (a concurrent build of the same key wins
    or loses as a whole)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(built, final)


def compile_all(jobs: Sequence[tuple[Path, Path, Sequence[str], str]]) -> list[BuildError]:
    """Compile (source, object, flags, what) jobs in parallel; the errors of those that failed."""
    running = [(subprocess.Popen(_compile_argv(src, obj, flags), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, env=_gcc_env()), what)
               for src, obj, flags, what in jobs]
    failures = []
    for process, what in running:
        _, stderr = process.communicate()
        if process.returncode != 0:
            failures.append(_first_error(stderr, f"compiling {what}"))
    return failures


def _check_entry_points(obj: Path, nf: Path) -> None:
    done = run_tool(["nm", "--defined-only", str(obj)])
    if done.returncode != 0:
        raise BuildError(f"cannot list the symbols of {nf}: {done.stderr.strip()}")
    defined = {fields[2] for fields in (ln.split() for ln in done.stdout.splitlines())
               if len(fields) == 3 and fields[1] == "T"}
    for name, signature in ENTRY_POINTS.items():
        if name not in defined:
            raise BuildError(f"{nf} does not define {name} (expected: {signature}, not static)")


def build_nf(nf_path: str | Path, defines: Optional[Mapping[str, str]] = None, kind: str = "seq",
             sanitize: Optional[str | Sequence[str]] = None) -> Path:
    """Build the NF with the runtime and the sequential harness (kind "seq") or the DPDK forwarder
    (kind "dpdk"); returns the cached executable.

    The cache key covers the NF as preprocessed with its defines (so every header it includes),
    the runtime's sources, all flags, DPDK's pkg-config flags and gcc's version."""
    if kind not in KINDS:
        raise ConfigError(f"unknown build kind {kind!r}: choose from {', '.join(KINDS)}")
    config, preprocessed = _configure(nf_path, defines)
    nf = config.path
    driver, program = KINDS[kind]
    sanitizers = _sanitize_flags(sanitize)
    dpdk_cflags, dpdk_libs = dpdk_flags()
    nf_flags = [f"-I{INCLUDE_DIR}", *(f"-D{n}={v}" for n, v in config.defines), *sanitizers]
    runtime_flags = [f"-I{INCLUDE_DIR}", f"-I{RUNTIME_DIR}", *dpdk_cflags, *sanitizers]
    driver_flags = [*runtime_flags, f"-DNF_DEVICES={config.devices}"]
    identity = (compiler_identity(), BASE_FLAGS, dpdk_cflags, dpdk_libs)
    runtime_key = digest("runtime", identity, _runtime_sources(), runtime_flags)
    driver_key = digest("driver", driver, identity, _runtime_sources(), driver_flags)
    key = digest("nf", kind, identity, preprocessed, nf_flags, runtime_key, driver_key)

    root = cache_dir()
    final = root / "bin" / f"{nf.stem}-{kind}-{key[:20]}" / program
    if final.is_file():
        return final
    objects = {"runtime": root / "obj" / f"nf_state-{runtime_key[:20]}.o",
               "trace": root / "obj" / f"nf_trace-{runtime_key[:20]}.o",
               "driver": root / "obj" / f"{Path(driver).stem}-{driver_key[:20]}.o"}
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    except OSError as error:
        raise BuildError(f"cannot use the build cache {root}: {error.strerror}") from None
    try:
        jobs = [(nf, work / "nf.o", nf_flags, str(nf))]
        if not objects["runtime"].is_file():
            jobs.append((RUNTIME_DIR / "nf_state.c", work / "runtime.o", runtime_flags, "the runtime"))
        if not objects["trace"].is_file():
            jobs.append((RUNTIME_DIR / "nf_trace.c", work / "trace.o", runtime_flags, "the trace reader"))
        if not objects["driver"].is_file():
            jobs.append((RUNTIME_DIR / driver, work / "driver.o", driver_flags, driver))
        failures = compile_all(jobs)
        for name in ("runtime", "trace", "driver"):  # keep what compiled, even when the NF did not
            if (work / f"{name}.o").is_file():
                place_atomically(work / f"{name}.o", objects[name])
        if failures:
            raise failures[0]
        _check_entry_points(work / "nf.o", nf)
        link = ["gcc", "-o", str(work / program), str(work / "nf.o"), str(objects["runtime"]),
                str(objects["trace"]), str(objects["driver"]), *sanitizers, *dpdk_libs]
        done = run_tool(link)
        if done.returncode != 0:
            raise link_error(done.stderr)
        place_atomically(work / program, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
