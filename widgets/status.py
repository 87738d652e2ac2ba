"""The status line under the explorer: what is running, and how the last engine call ended.

Engine calls block the kernel, so the line is set *before* the call (the browser receives the
message at once) and again after it. User errors (``NfxError``) end up here as text; anything
else is a bug and is re-raised after being shown.
"""
from __future__ import annotations

import html
import time
from typing import Any, Callable, Optional

import ipywidgets
import traitlets

from explorer.errors import NfxError

_COLOURS = {"idle": "#555", "busy": "#1f5fbf", "done": "#1a7f37", "error": "#b42318"}
_ICONS = {"idle": "", "busy": "\u23f3 ", "done": "\u2714 ", "error": "\u2716 "}


class StatusBar(ipywidgets.HBox):
    """A one-line status with a progress bar that runs while the kernel is busy."""

    state = traitlets.Enum(("idle", "busy", "done", "error"), default_value="idle")
    message = traitlets.Unicode("")
    seconds = traitlets.Float(0.0)  # how long the last successful call took

    def __init__(self, **kwargs: Any) -> None:
        self._label = ipywidgets.HTML()
        self._bar = ipywidgets.IntProgress(value=0, min=0, max=1, bar_style="info",
                                           layout=ipywidgets.Layout(width="120px", display="none"))
        super().__init__([self._bar, self._label], **kwargs)
        self.add_class("nfx-status")
        self._show()

    @traitlets.observe("state", "message")
    def _on_change(self, _change: Any) -> None:
        self._show()

    def _show(self) -> None:
        colour = _COLOURS[self.state]
        text = html.escape(self.message)
        self._label.value = (f'<span class="nfx-status-{self.state}" style="color:{colour};'
                             f'white-space:pre-wrap">{_ICONS[self.state]}{text}</span>')
        busy = self.state == "busy"
        self._bar.value = 1 if busy else 0
        self._bar.layout.display = "flex" if busy else "none"

    def run(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Optional[Any]:
        """Call ``call(*args, **kwargs)`` with ``what`` shown meanwhile; None when it raised NfxError."""
        self.state, self.message = "busy", f"{what}\u2026"
        start = time.perf_counter()
        try:
            result = call(*args, **kwargs)
        except NfxError as error:
            self.state, self.message = "error", f"{what} failed: {error}"
            return None
        except Exception as error:  # a bug, not a user error: say so, then let it surface
            self.state, self.message = "error", f"{what}: internal error {type(error).__name__}: {error}"
            raise
        self.seconds = time.perf_counter() - start
        self.state, self.message = "done", f"{what}: done in {self.seconds:.2f} s"
        return result

    def report(self, state: str, message: str) -> None:
        """Say something that is not the outcome of one call (a summary, a missing input)."""
        self.state, self.message = state, message
