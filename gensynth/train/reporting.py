"""Progress, JSONL and TensorBoard scalars, and PNG image grids.

Only the process that owns the reporter (process 0 in a multi-host job) writes
files; the others report nothing.
"""

import json
import math
import os
import time

import numpy as np
from absl import logging
from PIL import Image

from gensynth import errors


def image_grid(images, *, ncols=None, pad=1, pad_value=1.0):
  """[N, H, W, C] images in [0, 1] -> one [H', W', C] grid, row-major."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise errors.InputError(
        f'image_grid expects [N, H, W, C], got {images.shape}.')
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c),
                 pad_value, images.dtype)
  for i in range(n):  # N tiles, not pixels: a host-side layout loop.
    r, q = divmod(i, ncols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h,
         pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
  return grid


def to_uint8(images):
  return (np.clip(np.asarray(images, np.float32), 0, 1) * 255).round().astype(
      np.uint8)


def save_png(path, image):
  """Writes an [H, W, C] float image in [0, 1] (C = 1, 3 or 4) as PNG."""
  arr = to_uint8(image)
  if arr.shape[-1] == 1:
    arr = arr[..., 0]
  Image.fromarray(arr).save(path)


class Reporter:
  """Terminal progress, metrics.jsonl and TensorBoard events in `workdir`."""

  def __init__(self, workdir, *, total_steps, start_step=0, enabled=True):
    self.workdir = workdir
    self.total_steps = total_steps
    self.enabled = enabled
    self._t0, self._s0 = time.perf_counter(), start_step
    self._last_t, self._last_s = self._t0, start_step
    self._jsonl = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if enabled:
      _truncate_jsonl(self._jsonl, start_step)
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def scalars(self, step, metrics, *, prefix='train'):
    """Logs scalars; train scalars also get steps/s and an ETA. A value of
    None (a measurement that cannot be taken, e.g. the compile count of a
    run resumed at its last step, which compiled no step) is left out."""
    if not self.enabled:
      return
    now = time.perf_counter()
    metrics = {k: float(v) for k, v in metrics.items() if v is not None}
    line = ''
    if prefix == 'train' and step > self._last_s:
      rate = (step - self._last_s) / max(now - self._last_t, 1e-9)
      metrics['steps_per_sec'] = rate
      eta = (self.total_steps - step) / max(rate, 1e-9)
      line = f' | {rate:.2f} steps/s, ETA {_hms(eta)}'
      self._last_t, self._last_s = now, step
    with open(self._jsonl, 'a') as f:
      f.write(json.dumps({'step': step, 'split': prefix,
                          'wall_s': round(now - self._t0, 3), **metrics}) + '\n')
    for k, v in metrics.items():
      self._tb.add_scalar(f'{prefix}/{k}', v, step)
    shown = ', '.join(f'{k}={v:.4g}' for k, v in metrics.items()
                      if k != 'steps_per_sec')
    logging.info('[%s] step %d/%d: %s%s', prefix, step, self.total_steps, shown,
                 line)

  def images(self, step, name, images, *, ncols=None):
    """Saves `images` ([N, H, W, C] in [0, 1]) as workdir/name_STEP.png."""
    if not self.enabled:
      return None
    grid = image_grid(np.clip(images, 0, 1), ncols=ncols)
    path = os.path.join(self.workdir, f'{name}_{step:07d}.png')
    save_png(path, grid)
    self._tb.add_image(name, grid, step, dataformats='HWC')
    return path

  def close(self):
    """Flushes and closes the event file (again: a no-op)."""
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def _truncate_jsonl(path, start_step):
  """Drops records past `start_step` left by a run that died after its last
  checkpoint, so a resumed run's log reads as one uninterrupted run."""
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        if json.loads(line)['step'] <= start_step:
          keep.append(line)
      except (ValueError, KeyError):  # A line cut short by a kill.
        continue
  with open(path, 'w') as f:
    f.writelines(keep)


def _hms(seconds):
  seconds = int(seconds)
  return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
