"""absl entry points: parse flags, log devices, call the gensynth library."""
