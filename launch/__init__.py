"""absl entry points: parse flags, log devices, call the gensynth library.

Run as `python -m launch.<name>`, a script first restarts itself (before
importing anything heavy) with glibc's malloc asked for transparent huge pages
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1). XLA:CPU allocates fresh output and
temporary buffers on every call, and with 4 KiB pages their first touch costs
page faults and TLB misses: measured on the 2-core CPU here, a 6-level
pyramid blend of two 2048x2048x3 images runs in 68 ms instead of 122 ms, a
weighted blend at 30 GB/s instead of 9 (BUILD_NOTES.md). Nothing changes where
glibc is absent or too old to know the tunable (it ignores unknown ones).
Set GENSYNTH_HUGETLB=0 to keep the process as started; a GLIBC_TUNABLES that
already names glibc.malloc.hugetlb is left alone.
"""

import os
import sys

_TUNABLE = 'glibc.malloc.hugetlb'


def _restart_with_huge_pages():
  """os.execv's this `python -m launch.X` process with the tunable set."""
  if os.environ.get('GENSYNTH_HUGETLB', '1') == '0':
    return
  tunables = os.environ.get('GLIBC_TUNABLES', '')
  if _TUNABLE in tunables or not sys.platform.startswith('linux'):
    return
  # Only for `python -m launch.<module>`: while -m is locating the module,
  # sys.argv[0] is '-m'. Importing launch from other code (tests, notebooks)
  # never restarts anything.
  argv = getattr(sys, 'orig_argv', None)
  if sys.argv[:1] != ['-m'] or not argv or '-m' not in argv:
    return
  i = argv.index('-m')
  if i + 1 >= len(argv) or not argv[i + 1].startswith('launch.'):
    return
  import platform  # pylint: disable=g-import-not-at-top
  if platform.libc_ver()[0] != 'glibc':
    return
  env = dict(os.environ)
  env['GLIBC_TUNABLES'] = (f'{tunables}:' if tunables else '') + f'{_TUNABLE}=1'
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable] + argv[1:], env)


_restart_with_huge_pages()
