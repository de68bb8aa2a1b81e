"""Experiment configs: one get_config(arg) per file, variants by string arg."""
