"""gcc builds of an NF with the C runtime: the sequential harness ("seq") or the DPDK forwarder
("dpdk"), cached by a content hash of every input.

The NF is read by ``explorer.nfsource`` first, exactly as the analysis reads it (the same include
rule, --define rules and NF_DEVICES), then preprocessed once more against the system's headers,
as gcc compiles it: that text is the cache key's.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Optional, Sequence

from explorer import cache
from explorer.errors import BuildError, BuildWarning, ConfigError
from explorer.frontend import parse_source
from explorer.ir import Location
from explorer.nfsource import (Limits, argv_path, first_error, gcc_env, plain_lines, preprocess, read_nf,
                               warning_lines)
from explorer.processes import run_child

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
INCLUDE_DIR = RUNTIME_DIR / "include"

BASE_FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11")
# For the NF's own file: nf_process's parameters are nf.h's, not the NF's choice, so one it ignores
# (now, packet) is no defect. Warnings about style (a helper or variable left unused while the NF is
# being written, a fall-through, a signed comparison) are the author's to weigh: shown, not fatal.
# Every other warning (a conversion that changes a value, a pointer of the wrong type, ...) means
# gcc may read the code differently from the analysis, and stays an error.
NF_STYLE_WARNINGS = ("unused-function", "unused-variable", "unused-but-set-variable", "unused-value",
                     "unused-label", "unused-const-variable", "type-limits", "sign-compare", "implicit-fallthrough",
                     "missing-field-initializers", "parentheses", "misleading-indentation", "empty-body")
NF_FLAGS = ("-Wno-unused-parameter", *(f"-Wno-error={name}" for name in NF_STYLE_WARNINGS))
SANITIZERS = ("address", "undefined", "leak")
KINDS = {"seq": ("harness.c", "nfx-seq"), "dpdk": ("dpdk_main.c", "nfx-dpdk")}
COMPILE_LIMITS = Limits(seconds=300.0, memory=4 << 30, output=1 << 30)
ENTRY_POINTS = {
    "nf_init": "bool nf_init(void)",
    "nf_process": "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now)",
}


# ---- gcc and pkg-config ------------------------------------------------------------------------

def run_tool(argv: Sequence[str], *, limits: Limits = COMPILE_LIMITS, cwd: Optional[Path] = None,
             text: bool = True) -> subprocess.CompletedProcess:
    """Run a build tool (gcc, nm, pkg-config) under ``limits`` in ``cwd``, killed with nfx."""
    try:
        return run_child(list(argv), timeout=limits.seconds, env=gcc_env(), cwd=cwd, text=text,
                         preexec_fn=limits.apply)
    except FileNotFoundError as error:
        raise BuildError(f"cannot run {argv[0]}: {error.strerror}") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{argv[0]} took longer than {limits.seconds:g} s (the time limit)") from None


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

def compile_error(stderr: str, what: str, spelled: Optional[Mapping[str, str]] = None,
                  cwd: Optional[Path] = None) -> BuildError:
    """One BuildError from gcc's JSON diagnostics: the first error at its file:line:col and how
    many more there were (``spelled`` maps a path as gcc was given it back to the user's; a
    relative one is under ``cwd``, where gcc ran)."""
    diagnostic = first_error(stderr)
    if diagnostic is None:
        lines = plain_lines(stderr)
        return BuildError(f"{what} failed: {lines[0] if lines else 'gcc gave no message'}")
    location = diagnostic.location
    if location is not None and spelled and location.file in spelled:
        location = Location(spelled[location.file], location.line, location.col)
    elif location is not None and cwd is not None and not os.path.isabs(location.file):
        location = Location(str(cwd / location.file), location.line, location.col)
    return BuildError(diagnostic.sentence(), location=location)


def link_error(stderr: str) -> BuildError:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "undefined reference to" in ln:
            return BuildError("link failed: " + ln[ln.index("undefined reference to"):])
    for ln in lines:
        if "error" in ln:
            return BuildError("link failed: " + ln)
    return BuildError("link failed: " + (lines[0] if lines else "no message from the linker"))


# ---- builds ------------------------------------------------------------------------------------------

def _file_name(stem: str) -> str:
    """An NF's name as a safe part of a cache folder's name."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem)[:40].lstrip("-.") or "nf"


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


def _compile_argv(source: str | Path, output: Path, flags: Sequence[str]) -> list[str]:
    return ["gcc", *BASE_FLAGS, "-fdiagnostics-format=json", *flags, "-c", argv_path(source), "-o", argv_path(output)]


def compile_all(jobs: Sequence[tuple[str | Path, Path, Sequence[str], str]],
                warned: Optional[dict[str, list[str]]] = None, cwd: Optional[Path] = None) -> list[BuildError]:
    """Compile (source, object, flags, what) jobs in parallel, in ``cwd``; the errors of those that
    failed, in job order. ``what`` names the source in messages (a path as the user wrote it);
    ``warned`` receives, per ``what`` that compiled with warnings, their lines (``warning_lines``)."""
    def one(job: tuple[str | Path, Path, Sequence[str], str]) -> Optional[BuildError]:
        source, obj, flags, what = job
        done = run_tool(_compile_argv(source, obj, flags), cwd=cwd)
        same = os.path.realpath(os.path.join(cwd or "", source)) == os.path.realpath(what)  # the NF, as ./-x.c
        spelled = {argv_path(source): what} if same else None
        if done.returncode == 0:
            lines = warning_lines(done.stderr, spelled)
            if lines and warned is not None:
                warned[what] = lines
            return None
        return compile_error(done.stderr, f"compiling {what}", spelled, cwd)

    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        results = list(pool.map(one, jobs))
    return [failure for failure in results if failure is not None]


def _check_entry_points(obj: Path, nf: str) -> None:
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
    sanitizers = _sanitize_flags(sanitize)
    request = (os.getcwd(), os.fspath(nf_path), tuple(sorted((defines or {}).items())), kind, sanitizers)
    if request in _BUILT:
        name, files, seen = _BUILT[request]
        found = cache.lookup("bin", name) if _read_digest(files) == seen else None
        if found is not None:
            _show_warnings(found)
            return found / KINDS[kind][1]
    source = read_nf(nf_path, defines)
    scan = preprocess(source.path, source.gcc_defines, f"preprocessing {source.path}", analysis=False)
    preprocessed = scan.text
    read = tuple(sorted({*source.files, *scan.files}))
    seen = _read_digest(read)
    driver, program = KINDS[kind]
    dpdk_cflags, dpdk_libs = dpdk_flags()
    nf_flags = [f"-I{INCLUDE_DIR}", *NF_FLAGS, *source.gcc_defines, *sanitizers]
    runtime_flags = [f"-I{INCLUDE_DIR}", f"-I{RUNTIME_DIR}", *dpdk_cflags, *sanitizers]
    driver_flags = [*runtime_flags, f"-DNF_DEVICES={source.devices}"]
    identity = (compiler_identity(), BASE_FLAGS, dpdk_cflags, dpdk_libs)
    runtime_key = digest("runtime", identity, _runtime_sources(), runtime_flags)
    driver_key = digest("driver", driver, identity, _runtime_sources(), driver_flags)
    key = digest("nf", kind, identity, preprocessed, nf_flags, runtime_key, driver_key)

    name = f"{_file_name(Path(source.path).stem)}-{kind}-{key[:20]}"
    if seen is not None:
        _BUILT[request] = (name, read, seen)
    found = cache.lookup("bin", name)
    if found is not None:
        _show_warnings(found)
        return found / program
    parts = {"runtime": (f"nf_state-{runtime_key[:20]}", RUNTIME_DIR / "nf_state.c", runtime_flags, "the runtime"),
             "trace": (f"nf_trace-{runtime_key[:20]}", RUNTIME_DIR / "nf_trace.c", runtime_flags, "the trace reader"),
             "driver": (f"{Path(driver).stem}-{driver_key[:20]}", RUNTIME_DIR / driver, driver_flags, driver)}
    parse_source(source)  # what the analysis refuses (pycparser's C, no GNU extensions), the build refuses
    with cache.scratch() as work:
        objects = {part: cache.lookup("obj", spec[0]) for part, spec in parts.items()}
        jobs = [(source.path, work / "nf.o", nf_flags, source.path)]
        jobs += [(src, work / f"{part}.o", flags, what) for part, (_, src, flags, what) in parts.items()
                 if objects[part] is None]
        warned: dict[str, list[str]] = {}
        failures = compile_all(jobs, warned)
        for part, (entry, *_) in parts.items():  # keep what compiled, even when the NF did not
            if objects[part] is None and (work / f"{part}.o").is_file():
                objects[part] = cache.publish("obj", entry, {"object.o": work / f"{part}.o"})
        if failures:
            raise failures[0]
        _check_entry_points(work / "nf.o", source.path)
        link = ["gcc", "-o", str(work / program), str(work / "nf.o"),
                *(str(objects[part] / "object.o") for part in parts), *sanitizers, *dpdk_libs]
        done = run_tool(link)
        if done.returncode != 0:
            raise link_error(done.stderr)
        built = {program: work / program}
        if source.path in warned:  # kept with the program, so that a cached build shows them too
            (work / _WARNINGS).write_text("".join(line + "\n" for line in warned[source.path]))
            built[_WARNINGS] = work / _WARNINGS
        found = cache.publish("bin", name, built)
        _show_warnings(found)
        return found / program


_WARNINGS = "warnings.txt"

# The builds this process asked for: (cwd, NF as given, defines, kind, sanitizers) -> (cache entry,
# the files its preprocessing read, their digest). Asked again (a check runs the NF once per round
# of its closed loop), a build costs a hash of those files, not four runs of the preprocessor.
_BUILT: dict[tuple, tuple[str, tuple[str, ...], str]] = {}


def _read_digest(files: Sequence[str]) -> Optional[str]:
    """A digest of ``files``' bytes, of the headers' names in their folders (a header added beside
    one may shadow another) and of the runtime's sources; None when one cannot be read."""
    h = hashlib.sha256(_runtime_sources())
    try:
        for folder in sorted({os.path.dirname(f) for f in files}):
            h.update(b"\0".join(sorted(n.encode("utf-8", "surrogateescape") for n in os.listdir(folder or ".")
                                        if n.endswith(".h"))))
        for f in files:
            h.update(f.encode("utf-8", "surrogateescape") + b"\0" + Path(f).read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def _show_warnings(entry: Path) -> None:
    """The NF's style warnings, kept in its build's cache entry (whose key covers the NF's path:
    the preprocessed text names it), as ``BuildWarning``s."""
    with contextlib.suppress(FileNotFoundError):
        for line in (entry / _WARNINGS).read_text().splitlines():
            warnings.warn(BuildWarning(line), stacklevel=3)
