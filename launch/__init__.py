"""absl entry points: parse flags, log devices, call the gensynth library.

Process-level tuning (huge pages, malloc arenas, XLA:CPU switches) is in
launch/runtime.py; each script calls what it uses.
"""
