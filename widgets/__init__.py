"""ipywidgets views over the engine's result values (notebooks -> widgets -> explorer)."""
