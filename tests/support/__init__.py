"""Shared helpers for the engine, differential and property tests."""
