"""ipywidgets views over the engine's result values (notebooks -> widgets -> explorer).

``ExplorerApp`` is the whole app; call ``load_bokehjs()`` once in a notebook before showing it.
"""
from widgets.app import ExplorerApp
from widgets.load_view import load_bokehjs

__all__ = ["ExplorerApp", "load_bokehjs"]
