"""Test-wide settings: JAX's persistent compilation cache and helpers."""

import os
import tempfile

import jax
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run, so CI never turns red on
# a fresh random draw. Explore new ones with --hypothesis-profile=explore
# (optionally --hypothesis-seed=N) and turn what fails into fixes.
settings.register_profile('ci', derandomize=True)
settings.register_profile('explore', derandomize=False)
settings.load_profile('ci')

CACHE_DIR = os.path.join(tempfile.gettempdir(), 'gensynth_test_jax_cache')
os.makedirs(CACHE_DIR, exist_ok=True)
# Entries that a killed test subprocess left half-written (the SIGKILL tests
# make them) would make every write fail; each launch subprocess removes them
# too (launch.runtime.repair_compilation_cache).
from launch import runtime  # pylint: disable=g-import-not-at-top,g-bad-import-order
runtime.repair_compilation_cache(CACHE_DIR)
jax.config.update('jax_compilation_cache_dir', CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
# The size bound the launch scripts set (launch/runtime.py). Without it the
# in-process entries are written without the access-time files that a
# bounded cache's eviction reads, and every launch subprocess sharing this
# directory then fails to write its own entries (jax warns "Error writing
# persistent compilation cache entry" and recompiles in each subprocess).
jax.config.update('jax_compilation_cache_max_size', 2048 * 2**20)


@pytest.fixture
def rng():
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.random.default_rng(0)
