"""Scripted and property tests of the sans-I/O supervisor core (fsm.core)."""
