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
took = runtime.reuse_freed_memory() if sys.argv[1] == 'on' else None
import numpy as np

def rss_mib():
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * 4096 / 2**20

before = rss_mib()
a = np.ones(2**27, np.uint8)  # 128 MiB, touched
touched = rss_mib()
del a
print(json.dumps({'took': took, 'grew': touched - before,
                  'kept': rss_mib() - before}))
'''


def _probe(mode):
  proc = subprocess.run([sys.executable, '-c', _PROBE, mode],
                        cwd=helpers.REPO, env=helpers.env(),
                        capture_output=True, text=True, timeout=60,
                        check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='glibc malloc and /proc are Linux')
def test_freed_blocks_stay_mapped_only_when_asked():
  off, on = _probe('off'), _probe('on')
  assert off['grew'] > 100 and on['grew'] > 100
  # By default glibc maps a 128 MiB block on its own and unmaps it on free;
  # with the setting the heap keeps it for the next allocation.
  assert off['kept'] < 10, off
  assert on['took'] is True and on['kept'] > 100, on


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
