"""The evaluation engine: pure Python, no Django."""
