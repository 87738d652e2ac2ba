"""Verification of generated projects: does the parallel build behave like the sequential NF?

Owns running a generated project (its replay harness, ``replay``; its DPDK program on net_pcap ports,
``pcap_run``, with traces pre-split per core as RSS would, ``split``) and comparing the outcome with the
sequential run packet by packet (``equivalence``).
"""
