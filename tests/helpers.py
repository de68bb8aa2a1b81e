"""Shared test helpers: subprocess launches and small on-disk datasets."""

import gzip
import os
import subprocess
import sys

import numpy as np

from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(devices=None, **extra):
  e = dict(os.environ)
  e['JAX_COMPILATION_CACHE_DIR'] = conftest.CACHE_DIR
  e['JAX_PLATFORMS'] = 'cpu'
  e['TF_CPP_MIN_LOG_LEVEL'] = '3'
  if devices:
    e['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  e.update(extra)
  return e


def launch_cmd(module, *args):
  return [sys.executable, '-m', f'launch.{module}', *args]


def run_launch(module, *args, devices=None, timeout=300, check=True):
  """Runs `python -m launch.MODULE ARGS` from the repo root."""
  proc = subprocess.run(launch_cmd(module, *args), cwd=REPO, env=env(devices),
                        capture_output=True, text=True, timeout=timeout,
                        check=False)
  if check and proc.returncode != 0:
    raise AssertionError(f'launch.{module} failed ({proc.returncode}):\n'
                         f'{proc.stderr[-4000:]}')
  return proc


def shared_run(tmp_path_factory, name, *args, devices=None):
  """`launch.train ARGS --workdir=...` run once per test session and shared
  by the xdist workers (each would otherwise train its own copy for its
  fixtures), under a file lock in the session's base temp directory.

  Returns the workdir; the run's stderr is kept in WORKDIR/launch.stderr.
  """
  import filelock  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
  workdir = root / name
  with filelock.FileLock(str(root / f'{name}.lock')):
    if not (root / f'{name}.done').exists():
      proc = run_launch('train', *args, f'--workdir={workdir}',
                        devices=devices)
      (workdir / 'launch.stderr').write_text(proc.stderr)
      (root / f'{name}.done').touch()
  return str(workdir)


def write_idx(path, array, *, compress=False):
  """Writes `array` (uint8) as an IDX file."""
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(n).to_bytes(4, 'big') for n in array.shape)
  data = header + np.ascontiguousarray(array, np.uint8).tobytes()
  if compress:
    with gzip.open(path + '.gz', 'wb') as f:
      f.write(data)
  else:
    with open(path, 'wb') as f:
      f.write(data)


def slanted_bar(shift_per_row, width=3, size=28):
  """A digit-like vertical bar (uint8 [size, size]) of `width` pixels whose
  column moves by shift_per_row per row going up (positive: the top leans
  right)."""
  img = np.zeros((size, size), np.uint8)
  for r in range(4, 24):
    c = int(round(14 + shift_per_row * (14 - r)))
    img[r, c - width // 2:c - width // 2 + width] = 255
  return img


def make_idx_dir(directory, *, n_train=64, n_test=16, size=28, compress=True,
                 seed=0):
  """An MNIST-format IDX directory of random digits-like data."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for split, n in (('train', n_train), ('t10k', n_test)):
    write_idx(os.path.join(directory, f'{split}-images-idx3-ubyte'),
              rng.integers(0, 256, (n, size, size), dtype=np.uint8),
              compress=compress)
    write_idx(os.path.join(directory, f'{split}-labels-idx1-ubyte'),
              rng.integers(0, 10, n, dtype=np.uint8), compress=compress)
  return directory


def restore_params(workdir, step=None):
  """Raw restore of a checkpoint's state dict (no template)."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if step is None:
    step = max(int(s) for s in os.listdir(ckpt_dir) if s.isdigit())
  path = os.path.join(ckpt_dir, str(step), 'default')
  ckptr = ocp.StandardCheckpointer()
  meta = ckptr.metadata(path).item_metadata
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
  return step, jax.device_get(ckptr.restore(path, target))
