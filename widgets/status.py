"""A section's status line, next to the section's button: what is running (with progress when the
engine reports it), how the last engine call ended and for which inputs, or why the result shown
is out of date.

Engine calls block the kernel, so the line is set *before* the call (the browser receives the
message at once) and again after it; progress callbacks update it during the call. User errors
(``NfxError``) end up here as text; anything else is a bug and is re-raised after being shown.
Markers are drawn with CSS (a spinner, a dot), not with emoji or icon-font glyphs.
"""
from __future__ import annotations

import html
import inspect
import time
from typing import Any, Callable, Optional

import ipywidgets
import traitlets

from explorer.errors import NfxError

STATES = ("idle", "busy", "done", "warning", "error", "stale")
COLOURS = {"idle": "#57606a", "busy": "#0969da", "done": "#1a7f37", "warning": "#9a6700", "error": "#b42318",
           "stale": "#9a6700"}

STATUS_CSS = """<style>
.nfx-status { align-items: center; min-height: 26px; gap: 6px; }
.nfx-status .nfx-mark { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
                        margin-right: 6px; vertical-align: middle; }
.nfx-status .nfx-spin { display: inline-block; width: 10px; height: 10px; margin-right: 6px;
                        border: 2px solid #b6d4fe; border-top-color: #0969da; border-radius: 50%;
                        vertical-align: middle; animation: nfx-spin 0.8s linear infinite; }
@keyframes nfx-spin { to { transform: rotate(360deg); } }
.nfx-status .nfx-status-text { white-space: pre-wrap; font-size: 13px; line-height: 1.35; }
</style>"""


def accepts(call: Callable[..., Any], name: str) -> bool:
    """Whether ``call`` names a parameter ``name`` (engines grow options over time; a catch-all
    ``**params`` does not count: it may mean something else, such as traffic parameters)."""
    try:
        return name in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


class StatusLine(ipywidgets.HBox):
    """One section's status. ``state`` and ``message`` say what is going on; ``seconds`` is how long
    the last successful call took; ``progress`` (0..1, or -1 when unknown) is shown as a bar while busy."""

    state = traitlets.Enum(STATES, default_value="idle")
    message = traitlets.Unicode("")
    seconds = traitlets.Float(0.0)
    progress = traitlets.Float(-1.0)

    def __init__(self, idle: str = "", **kwargs: Any) -> None:
        self._label = ipywidgets.HTML(layout=ipywidgets.Layout(flex="1 1 auto"))
        self._bar = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                             layout=ipywidgets.Layout(width="140px", display="none"))
        super().__init__([self._bar, self._label], **kwargs)
        self.add_class("nfx-status")
        self.hint = idle  # what the line says when nothing happened yet
        self.error: Optional[NfxError] = None  # what the last call raised (None when it succeeded)
        self.message = idle
        self._show()

    @traitlets.observe("state", "message", "progress")
    def _on_change(self, _change: Any) -> None:
        self._show()

    def _show(self) -> None:
        colour = COLOURS[self.state]
        marker = ('<span class="nfx-spin"></span>' if self.state == "busy" else
                  "" if self.state == "idle" else f'<span class="nfx-mark" style="background:{colour}"></span>')
        self._label.value = (f'<span class="nfx-status-{self.state}" style="color:{colour}">{marker}'
                             f'<span class="nfx-status-text">{html.escape(self.message)}</span></span>')
        show_bar = self.state == "busy" and self.progress >= 0
        self._bar.value = max(0.0, min(1.0, self.progress))
        self._bar.layout.display = "flex" if show_bar else "none"

    def run(self, what: str, call: Callable[..., Any], *args: Any, total: Optional[int] = None,
            done: str = "", final: bool = True, **kwargs: Any) -> Optional[Any]:
        """``call(*args, **kwargs)`` with ``what`` shown meanwhile; None when it raised NfxError.

        With ``total`` and an engine function that takes ``progress``, the bar follows its
        ``progress(count)`` calls (count out of ``total``). ``done`` is appended to the success line
        (what the result was computed for). Without ``final`` more work follows under this line:
        success leaves it busy for the caller's own report (or ``finish``), so that no "done"
        flashes before the real outcome (a solve said "Solving ...: done" while it still explained)."""
        with self.hold_trait_notifications():  # one repaint: the new mark never shows beside the old text
            self.progress = -1.0
            self.report("busy", f"{what}\u2026")
        if total and accepts(call, "progress"):
            def progress(count: int) -> None:
                with self.hold_trait_notifications():
                    self.progress = min(1.0, count / total)
                    self.message = f"{what}\u2026 {count:,} of {total:,}"
            kwargs["progress"] = progress
        start = time.perf_counter()
        self.error = None
        try:
            result = call(*args, **kwargs)
        except NfxError as error:
            self.error = error
            self.report("error", f"{what} failed: {error}")
            return None
        except Exception as error:  # a bug, not a user error: say so, then let it surface
            self.report("error", f"{what}: internal error {type(error).__name__}: {error}")
            raise
        self.seconds = time.perf_counter() - start
        if final:
            self.finish(what, done)
        return result

    def finish(self, what: str, done: str = "", seconds: Optional[float] = None) -> None:
        """The success line of ``what`` (the last run's, or ``seconds``), for ``done``."""
        tail = f" for {done}" if done else ""
        self.report("done", f"{what}: done in {self.seconds if seconds is None else seconds:.2f} s{tail}")

    def report(self, state: str, message: str) -> None:
        """Show ``message`` in ``state``: an outcome, or something that is not the outcome of one
        call (a refusal, a summary, staleness)."""
        with self.hold_trait_notifications():  # one repaint: the new mark never shows beside the old text
            self.state, self.message = state, message
