"""Staged rollouts with guardrails (builds on flags and analytics)."""
