"""Exports of stored exposure events to Mixpanel and Amplitude (see docs/analytics-exports.md)."""
