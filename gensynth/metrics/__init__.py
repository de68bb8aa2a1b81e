"""Metrics: likelihood bounds live in gensynth.losses; image and fusion
quality metrics in gensynth.metrics.image."""
