"""Dependencies run one way, notebooks -> widgets -> explorer: importing every module of the
engine must not pull in the Jupyter or plotting stack (nor Graphviz's Python renderer)."""
from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("ipywidgets", "IPython", "bokeh", "graphviz", "jupyter_bokeh", "ipykernel", "traitlets", "widgets")

# Imports every module of a package in a fresh interpreter, then lists the forbidden top-level
# packages present in sys.modules.
_PROBE = """
import importlib, json, pkgutil, sys, traceback
package = importlib.import_module(sys.argv[1])
failed = {}
names = sorted(m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."))
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))
print(json.dumps({"modules": names, "failed": failed, "loaded": loaded}))
"""


def import_everything(package: str) -> dict:
    run = subprocess.run([sys.executable, "-c", _PROBE, package, *FORBIDDEN], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_engine_never_imports_the_ui_stack():
    report = import_everything("explorer")
    assert "explorer.pipeline" in report["modules"] and "explorer.commands.explore" in report["modules"]
    assert report["failed"] == {}, "engine modules that do not import:\n" + "\n".join(report["failed"].values())
    assert report["loaded"] == [], f"the engine imported {report['loaded']}"


def test_the_probe_sees_the_ui_stack_where_it_is_used():
    # The same probe on the widgets package must find what the widgets use: the check can fail.
    report = import_everything("widgets")
    assert report["failed"] == {}
    assert {"ipywidgets", "bokeh", "graphviz", "jupyter_bokeh", "traitlets", "widgets"} <= set(report["loaded"])
