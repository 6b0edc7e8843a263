"""The ``churnops`` command line."""
