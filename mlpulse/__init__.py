"""mlpulse: monitoring for machine-learning systems (CLI, configuration and wiring).

Importing this package is cheap: heavy dependencies (TensorFlow, DuckDB, FastAPI) are imported
by the modules that need them, when they need them.
"""

__version__ = "0.1.0"
