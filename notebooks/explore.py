# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %%
import os
from pathlib import Path

from widgets import ExplorerApp, load_bokehjs

load_bokehjs()  # BokehJS from the installed package: the page needs no CDN
# `nfx explore NF` passes the NF in NFX_NF; opened by hand, the notebook shows the firewall.
NF = os.environ.get("NFX_NF", str(Path("../sample_nfs/fw.c").resolve()))
# Generate writes <nf>-parallel beside the NF (under NFX_OUT instead, where that is set).
OUT = os.environ.get("NFX_OUT", "")
app = ExplorerApp(NF, out_dir=str(Path(OUT).resolve()) if OUT else "")
app
