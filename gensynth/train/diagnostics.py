"""Process measurements the trainers report: resident memory and compiles."""

import os


def rss_mib():
  """Resident set size of this process in MiB (Linux /proc), else None."""
  try:
    with open('/proc/self/statm') as f:
      pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20
  except (OSError, ValueError, IndexError):
    return None


def compile_count(*jitted):
  """The most compiled variants any of the `jax.jit` functions holds (1 = no
  retrace), or None if one cannot say."""
  counts = []
  for fn in jitted:
    size = getattr(fn, '_cache_size', None)
    if not callable(size):
      return None
    counts.append(size())
  return max(counts) if counts else None
