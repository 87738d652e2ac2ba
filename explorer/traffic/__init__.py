"""Traffic: traces (``trace``), pcap and pcapng I/O (``pcap``, ``pcapng``), packet fields as numpy
arrays (``fields``), and seeded synthetic traffic (``generators``, printed by ``frames`` from
``headers``)."""
