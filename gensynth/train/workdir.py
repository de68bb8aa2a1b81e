"""A run's directory: the write check, config.json, info.json and JSON files.

Everything under `workdir` except checkpoints (gensynth.train.checkpoint) and
logs (gensynth.train.reporting) is written and read here, so the trainers,
the evaluators and the launch scripts agree on one layout.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from gensynth import errors
from gensynth.configs import common as config_lib


def check_writable(workdir):
  """Creates `workdir` and proves it writable before any training happens."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f'.write_probe_{os.getpid()}')
    with open(probe, 'wb') as f:
      f.write(b'\0' * (1 << 20))  # 1 MiB: also fails on a full disk.
      f.flush()
      os.fsync(f.fileno())
    os.remove(probe)
  except OSError as e:
    raise errors.WorkdirError(
        f'workdir {workdir!r} is not writable ({e.strerror}); pass a '
        '--workdir on a disk with free space and write permission.') from e


def save_config(workdir, config, **info):
  """Writes config.json, and info.json with `info` (data facts such as
  image_shape and num_classes), from process 0 only, so evaluation and
  sampling can rebuild the model without loading the data."""
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(indent=2))
    if info:
      write_json(os.path.join(workdir, 'info.json'), info)


def load_config(workdir):
  """The config a run saved in `workdir`, upgraded to today's fields
  (`gensynth.configs.common.upgrade`).

  Raises:
    errors.CheckpointNotFoundError: if `workdir` holds no config.json.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise errors.CheckpointNotFoundError(
        f'{path} not found: the workdir must be a run written by '
        'launch.train.')
  with open(path) as f:
    try:
      raw = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.CheckpointError(f'{path} is not valid JSON ({e}).') from e
  return config_lib.upgrade(ml_collections.ConfigDict(raw))


def load_info(workdir):
  """The info.json written by save_config, or {} if there is none."""
  path = os.path.join(workdir, 'info.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def write_json(path, record):
  """Writes `record` (NumPy scalars allowed) as JSON from process 0 only."""
  if jax.process_index() == 0:
    with open(path, 'w') as f:
      json.dump(record, f, indent=2, default=_jsonable)


def _jsonable(x):
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  raise TypeError(f'{type(x)} is not JSON serialisable')
