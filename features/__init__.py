"""Raw clinical data → model-ready tables: contract, I/O, units, simulator, tasks, features."""
