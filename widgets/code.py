"""Syntax-highlighted source as HTML, one element per line so views can mark and annotate lines."""
from __future__ import annotations

import html
from typing import Mapping, Optional

import pygments
import pygments.formatters
import pygments.lexer
import pygments.lexers
import pygments.util

_SCOPE = ".nfx-code"
HOST_CLASS = "nfx-code-host"  # the class of the ipywidgets.HTML a view shows the code in

# Colours for the Pygments tokens, scoped so they never restyle the rest of the page.
_TOKEN_CSS = pygments.formatters.HtmlFormatter(style="default").get_style_defs(_SCOPE)

CODE_CSS = _TOKEN_CSS + """
.nfx-code { font-family: 'DejaVu Sans Mono', monospace; font-size: 12px; line-height: 1.45;
            border: 1px solid #d0d7de; border-radius: 4px; background: #fafbfc; overflow: auto; }
.nfx-code .nfx-line { white-space: pre; padding-right: 8px; }
.nfx-code .nfx-ln { display: inline-block; width: 3.5em; color: #8c959f; text-align: right;
                    padding-right: 0.8em; user-select: none; }
.nfx-code .nfx-access { background: #fff8c5; }
.nfx-code .nfx-selected { background: #ffd8a8; box-shadow: inset 3px 0 0 #d9480f; }
.nfx-code .nfx-fold summary { color: #57606a; cursor: pointer; padding-left: 1em; font-style: italic; }
.nfx-code .nfx-note { color: #6e4c00; font-size: 11px; margin-left: 1.5em; font-style: italic; }
.nfx-code .nfx-selected .nfx-note { color: #8a2c00; font-weight: bold; }
.nfx-code .nfx-warned { background: #fff1d6; box-shadow: inset 3px 0 0 #9a6700; }
.nfx-code .nfx-warned .nfx-note { color: #9a6700; font-weight: bold; font-style: normal; }
/* A note may be long (the analysis' advice for a goto): it wraps, never runs off the pane, which
   the code lines' white-space: pre let it do. A warning's note goes under its line, past the
   line numbers, and wraps there. */
.nfx-code .nfx-note { white-space: normal; overflow-wrap: anywhere; }
.nfx-code .nfx-warned .nfx-note { display: block; margin: 0 0 2px 52px; }  /* 4.3em of 12 px: the line numbers */
/* The HTML widget holding the code may be narrower than its longest line: the code box scrolls
   that line itself (a flex item's min-width would widen the box past the pane, behind its edge). */
.""" + HOST_CLASS + """ > .widget-html-content { min-width: 0; }
"""


def _lexer(filename: str) -> pygments.lexer.Lexer:
    # stripnl=False keeps leading blank lines, so line N of the output is line N of the file.
    try:
        return pygments.lexers.get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except pygments.util.ClassNotFound:
        return pygments.lexers.TextLexer(stripnl=False, ensurenl=False)


def highlight_lines(text: str, filename: str) -> list[str]:
    """The HTML of each line of ``text`` (index 0 is line 1), coloured for ``filename``'s language.

    Pygments closes and reopens token spans at every newline, so each line's HTML stands alone.
    """
    if not text:
        return []
    formatter = pygments.formatters.HtmlFormatter(nowrap=True)
    out = pygments.highlight(text, _lexer(filename), formatter)
    lines = out.split("\n")
    expected = text.count("\n") + (0 if text.endswith("\n") else 1)
    return lines[:expected] + [""] * (expected - len(lines))


def render_code(text: str, filename: str, *, notes: Optional[Mapping[int, str]] = None,
                marked: frozenset[int] = frozenset(), selected: frozenset[int] = frozenset(),
                warned: frozenset[int] = frozenset(), fold_before: int = 1, max_height: str = "460px") -> str:
    """Numbered, highlighted code. ``marked`` / ``selected`` are 1-based line numbers shown with
    a light / strong background, ``warned`` ones in the warning colour; ``notes`` adds a short
    annotation at the end of a line. Lines before ``fold_before`` are folded away (a click unfolds
    them), so the box opens on what matters without needing a script to scroll it."""
    notes = notes or {}
    rows = []
    for number, line_html in enumerate(highlight_lines(text, filename), start=1):
        classes = ["nfx-line"]
        if number in marked:
            classes.append("nfx-access")
        if number in selected:
            classes.append("nfx-selected")
        if number in warned:
            classes.append("nfx-warned")
        note = notes.get(number)
        note_html = f'<span class="nfx-note">\u2190 {html.escape(note)}</span>' if note else ""
        rows.append(f'<div class="{" ".join(classes)}" data-line="{number}">'
                    f'<span class="nfx-ln">{number}</span>{line_html}{note_html}</div>')
    folded = min(max(fold_before - 1, 0), len(rows))
    if folded:
        summary = f"lines 1\u2013{folded}" if folded > 1 else "line 1"
        rows[:folded] = [f'<details class="nfx-fold"><summary>{summary}</summary>{"".join(rows[:folded])}</details>']
    return (f"<style>{CODE_CSS}</style>"
            f'<div class="nfx-code" style="max-height:{max_height}">{"".join(rows)}</div>')
