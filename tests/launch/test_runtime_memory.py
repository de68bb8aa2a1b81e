"""launch.runtime.reuse_freed_memory: glibc keeps freed image-sized blocks
for the next allocation instead of unmapping them."""

import json
import subprocess
import sys

import pytest

from tests import helpers

_PROBE = r'''
import json, sys
from launch import runtime
took = (runtime.reuse_freed_memory(int(sys.argv[2])) if sys.argv[1] == 'on'
        else None)
import numpy as np

def rss_mib():
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * 4096 / 2**20

import threading
before = rss_mib()
a = np.ones(2**27, np.uint8)  # 128 MiB, touched
touched = rss_mib()
del a
kept = rss_mib() - before

import ctypes, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []

def in_a_thread():  # XLA:CPU allocates its buffers on its own threads
  # Plain malloc (NumPy asks for huge pages on large arrays): 48 MiB touched,
  # freed, and again: how many pages fault in the second time?
  for _ in range(2):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(48 * 2**20)
    ctypes.memset(p, 1, 48 * 2**20)
    libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)

t = threading.Thread(target=in_a_thread)
t.start()
t.join()
print(json.dumps({'took': took, 'grew': touched - before, 'kept': kept,
                  'thread_refaults': faults[1]}))
'''


def _probe(mode, arenas=2):
  proc = subprocess.run([sys.executable, '-c', _PROBE, mode, str(arenas)],
                        cwd=helpers.REPO, env=helpers.env(),
                        capture_output=True, text=True, timeout=60,
                        check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='glibc malloc and /proc are Linux')
def test_freed_blocks_stay_mapped_only_when_asked():
  off, on, one = _probe('off'), _probe('on'), _probe('on', arenas=1)
  assert off['grew'] > 100 and on['grew'] > 100 and one['grew'] > 100
  # By default glibc maps a 128 MiB block on its own and unmaps it on free;
  # with the setting (two arenas by default, or one) the heap keeps it for
  # the next allocation.
  assert off['kept'] < 10, off
  assert on['took'] is True and on['kept'] > 100, on
  assert one['took'] is True and one['kept'] > 100, one
  # On a thread, a second 48 MiB buffer faults its 12,288 pages in afresh by
  # default, and reuses the first one's pages with the setting.
  assert off['thread_refaults'] > 10000, off
  assert on['thread_refaults'] < 1000 and one['thread_refaults'] < 1000, (
      on, one)


def test_reuse_freed_memory_needs_an_arena():
  from launch import runtime  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=r'arenas=0: expected at least 1'):
    runtime.reuse_freed_memory(arenas=0)


def test_synthesis_clis_take_the_flag(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gensynth.synth import io  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  paths = []
  for i in range(2):
    paths.append(str(tmp_path / f'{i}.png'))
    io.write_image(paths[-1], rng.random((40, 48, 3)).astype(np.float32))
  for flag in ("--reuse_freed_memory", "--noreuse_freed_memory"):
    out = tmp_path / f'out{flag}.png'
    helpers.run_launch('fuse', '--method=weighted', f'--inputs={",".join(paths)}',
                       f'--output={out}', flag)
    assert out.exists()
