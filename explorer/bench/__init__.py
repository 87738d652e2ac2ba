"""Measurement of generated projects: packets per second per strategy and core count, next to the
sequential build measured in the same run (``measure``), and the scaling chart (``plot``)."""
