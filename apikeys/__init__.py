"""API keys scoped to one environment and one kind."""
