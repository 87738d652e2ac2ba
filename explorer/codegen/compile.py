"""Building a generated project's programs with gcc, cached by content hash (explorer.build's cache,
compiler identity and DPDK flags), for the tests, ``nfx check`` and ``nfx bench``. The project's
own Makefile does the same for people.

Targets: ``replay`` (nfx-replay) and ``nf`` (nfx-nf, the DPDK program). ``sanitize`` adds
AddressSanitizer/UndefinedBehaviorSanitizer ("address,undefined") or ThreadSanitizer ("thread");
``defines`` adds ``-D`` flags (tests use them to inject faults, e.g. NF_TEST_FAULT_NO_WRITE_LOCK).
"""
from __future__ import annotations

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
    flags.insert(0, f"-I{folder}")
    found = cache.lookup("codegen", f"{program}-{key[:24]}")
    if found is not None:
        return found / program
    with cache.scratch() as work:
        jobs = []
        for source in sources:
            extra = (["-include", "nf_parallel.h"] if source == "nf_state.c" else
                     list(build.NF_FLAGS) if source == "nf.c" else [])  # as the Makefile builds them
            jobs.append((folder / source, work / (Path(source).stem + ".o"), [*flags, *extra], str(folder / source)))
        failures = build.compile_all(jobs)
        if failures:
            raise failures[0]
        done = build.run_tool(["gcc", "-o", str(work / program), *(str(work / (Path(s).stem + ".o")) for s in sources),
                           *sanitizers, *libs])
        if done.returncode != 0:
            raise build.link_error(done.stderr)
        return cache.publish("codegen", f"{program}-{key[:24]}", {program: work / program}) / program
