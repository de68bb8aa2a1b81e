"""End-to-end wall time of the synthesis CLIs, as a user runs them.

Each command runs as a subprocess, `--runs` times: cold (a fresh, empty
compilation cache directory each run) and warm (a cache that an earlier run
of the same command filled), next to the equivalent few-line OpenCV script
run the same way. Medians of the wall times, in seconds.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

FLAGS = flags.FLAGS

_CV_PYRAMID = r'''
import sys, cv2, numpy as np
a, b, m, out, levels = sys.argv[1:6]
a, b = (cv2.imread(p).astype(np.float32) for p in (a, b))
m = cv2.imread(m, cv2.IMREAD_GRAYSCALE).astype(np.float32)[..., None] / 255
def pyr(x, n):
  g = [x]
  for _ in range(n - 1):
    g.append(cv2.pyrDown(g[-1]))
  return g
def lap(x, n):
  g = pyr(x, n)
  return [g[i] - cv2.pyrUp(g[i + 1], dstsize=g[i].shape[1::-1])
          for i in range(n - 1)] + [g[-1]]
n = int(levels)
ms = [k if k.ndim == 3 else k[..., None] for k in pyr(m, n)]
bands = [la * (1 - k) + lb * k for la, lb, k in zip(lap(a, n), lap(b, n), ms)]
x = bands[-1]
for band in bands[-2::-1]:
  x = cv2.pyrUp(x, dstsize=band.shape[1::-1]) + band
cv2.imwrite(out, np.clip(x, 0, 255).astype(np.uint8))
'''

_CV_PANORAMA = r'''
import sys, cv2
imgs = [cv2.imread(p) for p in sys.argv[2:]]
status, pano = cv2.Stitcher_create(cv2.Stitcher_PANORAMA).stitch(imgs)
assert status == cv2.Stitcher_OK, status
cv2.imwrite(sys.argv[1], pano)
'''

_CV_EXPOSURE = r'''
import sys, cv2, numpy as np
imgs = [cv2.imread(p) for p in sys.argv[2:]]
out = cv2.createMergeMertens().process(imgs)
cv2.imwrite(sys.argv[1], np.clip(out * 255, 0, 255).astype(np.uint8))
'''


def _wall(cmd, env):
  t = time.perf_counter()
  subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
  return time.perf_counter() - t


def _cases(tmp):
  d = FLAGS.data_dir
  import cv2  # pylint: disable=g-import-not-at-top
  ao = os.path.join(d, 'fusion', 'apple_orange')
  ins = []
  for name in ('apple.png', 'orange.png', 'mask.png'):
    img = cv2.imread(os.path.join(ao, name))
    path = os.path.join(tmp, name)
    cv2.imwrite(path, cv2.resize(img, (512, 512)))
    ins.append(path)
  arches = sorted(os.path.join(d, 'panorama', 'arches', f) for f in
                  os.listdir(os.path.join(d, 'panorama', 'arches'))
                  if f.endswith('.jpg'))
  cave = sorted(os.path.join(d, 'fusion', 'mef', 'Cave', f) for f in
                os.listdir(os.path.join(d, 'fusion', 'mef', 'Cave')))
  out = os.path.join(tmp, 'out.png')
  py = sys.executable
  return {
      'pyramid_fuse_2x512': (
          [py, '-m', 'launch.fuse', '--method=pyramid', '--levels=6',
           f'--inputs={ins[0]},{ins[1]}', f'--mask={ins[2]}',
           f'--output={out}'],
          [py, '-c', _CV_PYRAMID, ins[0], ins[1], ins[2], out, '6']),
      'panorama_arches_3': (
          [py, '-m', 'launch.stitch', '--mode=panorama',
           f'--inputs={",".join(arches)}', f'--output={out}'],
          [py, '-c', _CV_PANORAMA, out, *arches]),
      'exposure_fuse_cave': (
          [py, '-m', 'launch.fuse', '--method=exposure',
           f'--inputs={",".join(cave)}', f'--output={out}'],
          [py, '-c', _CV_EXPOSURE, out, *cave]),
  }


def cli_wall_time():
  tmp = tempfile.mkdtemp(prefix='gensynth_cli_bench_')
  rows = []
  try:
    env = dict(os.environ)
    env.pop('JAX_COMPILATION_CACHE_DIR', None)
    env.pop('GLIBC_TUNABLES', None)  # as a user's shell runs them
    for name, (ours, cv) in _cases(tmp).items():
      cold, warm, opencv = [], [], []
      warm_cache = os.path.join(tmp, f'warm_{name}')
      _wall(ours + [f'--compilation_cache_dir={warm_cache}'], env)  # fill
      for i in range(FLAGS.rounds):
        cold_cache = os.path.join(tmp, f'cold_{name}_{i}')
        cold.append(_wall(ours + [f'--compilation_cache_dir={cold_cache}'],
                          env))
        shutil.rmtree(cold_cache, ignore_errors=True)
        warm.append(_wall(ours + [f'--compilation_cache_dir={warm_cache}'],
                          env))
        opencv.append(_wall(cv, env))
      med = lambda v: round(float(np.median(v)), 3)
      rows.append({'command': name, 'cold_s': med(cold), 'warm_s': med(warm),
                   'opencv_s': med(opencv),
                   'warm_over_opencv': round(med(warm) / med(opencv), 2)})
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return {'bench': 'cli_wall_time', 'runs': FLAGS.rounds, 'rows': rows}
