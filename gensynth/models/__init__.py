"""Flax Linen models: structure only, parameters live in pytrees."""
