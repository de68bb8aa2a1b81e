"""Losses as free functions of arrays."""
