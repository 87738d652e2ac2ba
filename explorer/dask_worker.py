"""Loaded by each worker of nfx's local Dask cluster (``explorer.sweep``: a worker preload). A
Ctrl-C at the terminal reaches the whole process group: the workers leave it to nfx, which stops
the cluster (else each prints its own KeyboardInterrupt traceback). Their logs are silenced too:
when nfx stops the cluster they would report the scheduler gone, and a task's own failure reaches
nfx as the task's exception anyway."""
import logging
import signal


def dask_setup(_worker) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's event loop runs in its main thread
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("distributed")] + ["distributed"]:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
