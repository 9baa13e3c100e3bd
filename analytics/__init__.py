"""Exposure and metric analytics."""
