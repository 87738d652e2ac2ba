"""One root error class with flat subclasses: every failure a user can cause is one of these.

The CLI prints ``str(error)`` and exits non-zero; nothing else of the engine reaches the user as a
traceback. Messages name the file (and line:col when there is one) and say what is wrong.
"""
from __future__ import annotations

from typing import Optional


class NfxError(Exception):
    """Root of every user-facing error."""

    def __init__(self, message: str, *, location: Optional[object] = None):
        super().__init__(message)
        self.message = message
        self.location = location  # an ir.Location, when the error points into C source

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(NfxError):
    """Bad command-line input: an unknown --define, a device the NF does not have, a bad option."""


class CSyntaxError(NfxError):
    """The NF is not valid C (reported as file:line:col)."""


class UnsupportedError(NfxError):
    """Valid C the analyzer cannot handle: recursion, unbounded loops, unknown library calls, ..."""


class BuildError(NfxError):
    """gcc failed to build the NF or generated code; carries the compiler's first errors."""


class RunError(NfxError):
    """The built program failed at run time."""


class TrafficError(NfxError):
    """A missing, empty or malformed pcap, or a bad traffic specification."""


class ShardingError(NfxError):
    """No RSS configuration can satisfy the request; the message explains the conflict."""

    def __init__(self, message: str, *, location: Optional[object] = None, conflict: Optional[object] = None):
        super().__init__(message, location=location)
        self.conflict = conflict  # the key solver's Conflict (devices and unsat constraints), when it found one


class SolverError(NfxError):
    """Z3 failed or gave up (timeouts, unknown)."""


class OutputError(NfxError):
    """A file or folder nfx cannot or must not write: a symlink, a system folder, a full disk."""


class GenerateError(NfxError):
    """Code generation refused (e.g. a non-empty output folder it did not create)."""


class BuildWarning(UserWarning):
    """A gcc warning about the NF's own code that the build lets through (``build.NF_STYLE_WARNINGS``:
    a signed comparison, an unused variable), as ``file:line:col: message [-Wname]``; shown on every
    build, cached ones too, as the CLI shows warnings: ``nfx <command>: warning: ...``."""


class AnalysisWarning(UserWarning):
    """Something in the NF that is legal C but almost certainly not what its author meant (the CLI
    prints it as ``nfx <command>: warning: ...``; the explorer shows it under the load status, and
    ``note`` beside the line at ``location``)."""

    def __init__(self, message: str, location: Optional[object] = None, note: str = ""):
        super().__init__(message)
        self.location = location  # an ir.Location
        self.note = note or message  # a few words for beside that line
