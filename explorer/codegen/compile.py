"""Building a generated project's programs with gcc, cached by content hash (explorer.build's cache,
compiler identity and DPDK flags), for the tests, ``nfx check`` and ``nfx bench``. The project's
own Makefile does the same for people.

Targets: ``replay`` (nfx-replay) and ``nf`` (nfx-nf, the DPDK program). ``sanitize`` adds
AddressSanitizer/UndefinedBehaviorSanitizer ("address,undefined") or ThreadSanitizer ("thread");
``defines`` adds ``-D`` flags (tests use them to inject faults, e.g. NF_TEST_FAULT_NO_WRITE_LOCK).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from explorer import build, cache
from explorer.codegen.project import GeneratedProject, is_complete
from explorer.errors import BuildError, ConfigError

TARGETS = {"replay": ("replay.c", "nfx-replay"), "nf": ("main.c", "nfx-nf")}
COMMON = ("nf.c", "nf_parallel.c", "nf_pool.c", "nf_replica.c", "nf_state.c", "nf_trace.c", "nf_plan.c")
SANITIZERS = ("address", "undefined", "thread")


def _sanitize_flags(sanitize: str | None) -> tuple[str, ...]:
    if not sanitize:
        return ()
    names = sorted(set(sanitize.split(",")))
    unknown = [n for n in names if n not in SANITIZERS]
    if unknown or ("thread" in names and len(names) > 1):
        raise ConfigError(f"bad sanitizer {sanitize!r}: use address, undefined, address,undefined or thread")
    return (f"-fsanitize={','.join(names)}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")


def build_program(project: GeneratedProject | str | Path, target: str = "replay", sanitize: str | None = None,
                  defines: Sequence[str] = ()) -> Path:
    """Compile and link ``target`` of the project in ``project``; returns the cached executable."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    folder = Path(project.folder if isinstance(project, GeneratedProject) else project)
    driver, program = TARGETS[target]
    sources = (driver, *COMMON)
    missing = [s for s in sources if not (folder / s).is_file()]
    if missing:
        raise BuildError(f"{folder} is not a generated project: {', '.join(missing)} missing")
    if not is_complete(folder):
        raise BuildError(f"{folder} was not completely written (nfx generate stopped part-way); run nfx generate "
                         "again to finish it")
    cflags, libs = build.dpdk_flags()
    sanitizers = _sanitize_flags(sanitize)
    flags = [*cflags, *sanitizers, *(f"-D{d}" for d in defines)]
    contents = b"".join(f.relative_to(folder).as_posix().encode() + b"\0" + f.read_bytes()  # subfolders: NF headers
                        for f in sorted(folder.rglob("*")) if f.suffix in (".c", ".h") and f.is_file())
    identity = (build.compiler_identity(), build.BASE_FLAGS, cflags, libs)
    key = build.digest("codegen", target, identity, contents, flags)  # the folder itself does not matter
    found = cache.lookup("codegen", f"{program}-{key[:24]}")
    if found is not None:
        return found / program
    with cache.scratch() as work:
        objects = _objects(folder, sources, flags, work)
        done = build.run_tool(["gcc", "-o", str(work / program), *map(str, objects), *sanitizers, *libs])
        if done.returncode != 0:
            raise build.link_error(done.stderr)
        return cache.publish("codegen", f"{program}-{key[:24]}", {program: work / program}) / program


def _extra_flags(source: str) -> list[str]:
    """A source's own flags, as the Makefile builds it."""
    return ["-include", "nf_parallel.h"] if source == "nf_state.c" else list(build.NF_FLAGS) if source == "nf.c" else []


def _objects(folder: Path, sources: Sequence[str], flags: Sequence[str], work: Path) -> list[Path]:
    """Each source's object, compiled in ``folder`` with paths relative to it (so that nothing in
    the object names the folder), or taken from the build cache where the same preprocessed text
    was compiled with the same flags before: a plan's replay and DPDK programs share seven sources,
    and the runtime's files of different plans mostly differ only in comments. What could not be
    preprocessed is compiled in ``work``, outside the cache."""
    compile_flags = ["-I.", *flags]
    identity = (build.compiler_identity(), build.BASE_FLAGS)
    # Without debug information an object holds no line numbers but those __LINE__ put in the text,
    # so line markers stay out of the key: a longer comment in nf_config.h changes no object.
    markers = [] if "-g" in flags else ["-P"]

    def entry(source: str) -> str | None:
        done = build.run_tool(["gcc", *build.BASE_FLAGS, "-E", *markers, *compile_flags, *_extra_flags(source),
                               build.argv_path(source)], cwd=folder, text=False)
        if done.returncode != 0:  # compiled below without the cache, for gcc's own words on it
            return None
        key = build.digest("codegen-object", identity, compile_flags, _extra_flags(source), source, done.stdout)
        return f"{Path(source).stem}-{key[:24]}"

    with ThreadPoolExecutor(max_workers=max(1, min(len(sources), os.cpu_count() or 1))) as pool:
        entries = dict(zip(sources, pool.map(entry, sources)))
    found = {s: cache.lookup("obj", e) for s, e in entries.items() if e is not None}
    missing = [s for s in sources if found.get(s) is None]
    # Debug information (sanitizer builds) names the folder gcc ran in: "." instead, as the sources.
    where = os.path.realpath(folder)
    mapped = [f"-fdebug-prefix-map={where}=."] if "-g" in flags and "=" not in where else []
    jobs = [(s, work / (Path(s).stem + ".o"), [*compile_flags, *_extra_flags(s), *mapped], str(folder / s))
            for s in missing]
    failures = build.compile_all(jobs, cwd=folder)
    if failures:
        raise failures[0]
    objects = {s: entry / "object.o" for s, entry in found.items() if entry is not None}
    for s in missing:
        built = work / (Path(s).stem + ".o")
        objects[s] = built if entries[s] is None else cache.publish("obj", entries[s], {"object.o": built}) / "object.o"
    return [objects[s] for s in sources]
