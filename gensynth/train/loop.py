"""Pieces every trainer's loop shares: workdir checks, preemption, metrics.

Kept free of any model so the VAE and GAN trainers run the same loop logic.
"""

import contextlib
import json
import math
import os
import signal
import threading
import time

import jax
import numpy as np
from absl import logging

from gensynth import data as data_lib
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import reporting
from gensynth.train import sharding


class NonFiniteError(FloatingPointError):
  """A training metric became NaN or Inf."""


def check_workdir(workdir):
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
    raise OSError(f'workdir {workdir!r} is not writable ({e.strerror}); pass a '
                  '--workdir on a disk with free space and write permission.'
                  ) from e


def prepare(config, workdir, *batch_sizes):
  """Checks the workdir and batch sizes, then returns the device mesh.

  `batch_sizes` are (name, size) pairs checked against the device count
  besides config.batch_size. Everything here fails before any training.
  """
  check_workdir(workdir)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  for name, size in batch_sizes:
    sharding.check_batch_size(size, mesh, name)
  logging.info('Devices: %d global, %d local, process %d/%d', mesh.devices.size,
               jax.local_device_count(), jax.process_index(),
               jax.process_count())
  return mesh


def load_data(config, global_batch_size, **batch_opts):
  """(train source, test source, this process's shuffled train batches)."""
  train_src = data_lib.load_split(config.data, 'train')
  test_src = data_lib.load_split(config.data, 'test')
  batches = data_lib.BatchIterator(
      train_src, global_batch_size=global_batch_size, seed=config.seed,
      value_range=config.data.value_range, process_index=jax.process_index(),
      process_count=jax.process_count(), **batch_opts)
  return train_src, test_src, batches


def resume(config, workdir, state, train_src):
  """Restores the newest valid checkpoint (or keeps the fresh `state`), writes
  config.json/info.json and opens the reporter.

  Returns:
    (checkpointer, state, start step, reporter).
  """
  ckpt = ckpt_lib.Checkpointer(workdir, save_every=config.checkpoint_every,
                               keep=config.get('keep_checkpoints', 3))
  state = ckpt.restore_or_init(state)
  start = int(state.step)
  save_config(workdir, config, image_shape=train_src.image_shape,
              num_classes=train_src.num_classes)
  reporter = reporting.Reporter(workdir, total_steps=config.num_steps,
                                start_step=start,
                                enabled=jax.process_index() == 0)
  return ckpt, state, start, reporter


def jit_train_step(step_fn, mesh):
  """`step_fn(state, batch, key)` jitted once: replicated state, batch split
  over the mesh's data axis, the old state's buffers donated."""
  repl, data_sh = sharding.replicated(mesh), sharding.data_sharded(mesh)
  return jax.jit(step_fn, in_shardings=(repl, data_sh, repl),
                 out_shardings=(repl, repl), donate_argnums=0)


class ScheduledStep:
  """A train step whose jitted variant the host picks from the step number:
  `variants[pick(step)](state, batch, key)`. `run` passes the step; each
  variant compiles once (e.g. with and without a lazy regulariser)."""

  def __init__(self, variants, pick):
    self.variants, self.pick = dict(variants), pick

  def __call__(self, state, batch, key, *, step):
    return self.variants[self.pick(step)](state, batch, key)


def save_config(workdir, config, **info):
  """Writes config.json, and info.json with `info` (data facts such as
  image_shape and num_classes), from process 0 only, so evaluation and
  sampling can rebuild the model without loading the data."""
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(indent=2))
    if info:
      write_json(os.path.join(workdir, 'info.json'), info)


def load_info(workdir):
  """The info.json written by save_config, or {} if there is none."""
  path = os.path.join(workdir, 'info.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


class Preemption:
  """Turns SIGTERM into a flag the loop polls, so it can checkpoint and exit."""

  def __init__(self):
    self.requested = False

  @contextlib.contextmanager
  def handler(self):
    if threading.current_thread() is not threading.main_thread():
      yield self
      return

    def on_term(signum, frame):
      del signum, frame
      logging.warning('SIGTERM received: checkpointing and exiting.')
      self.requested = True

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
      yield self
    finally:
      signal.signal(signal.SIGTERM, previous)


class MetricsBuffer:
  """Fetches step metrics one step late and averages them between logs.

  `push(step, metrics)` enqueues the device metrics of `step` and pulls those
  of the previous step, which the device has usually finished while the new
  step was being dispatched: one small transfer per step, no pipeline stall.
  A non-finite value raises NonFiniteError naming the step and the metric.
  """

  def __init__(self):
    self._pending = None
    self._sums, self._count = {}, 0

  def _pull(self):
    if self._pending is None:
      return
    step, metrics = self._pending
    self._pending = None
    host = jax.device_get(metrics)
    for k, v in host.items():
      if not math.isfinite(float(v)):
        raise NonFiniteError(
            f'non-finite {k}={float(v)} at step {step}; the last checkpoint '
            'before it is intact. Lower config.optim.lr or enable '
            'config.optim.grad_clip.')
      self._sums[k] = self._sums.get(k, 0.0) + float(v)
    self._count += 1

  def push(self, step, metrics):
    self._pull()
    self._pending = (step, metrics)

  def flush(self):
    """Pulls everything outstanding and returns (and resets) the means."""
    self._pull()
    means = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    self._sums, self._count = {}, 0
    return means


def rss_mib():
  """Resident set size of this process in MiB (Linux /proc), else None."""
  try:
    with open('/proc/self/statm') as f:
      pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20
  except (OSError, ValueError, IndexError):
    return None


def compile_count(jitted):
  """Number of compiled variants a jax.jit function holds (1 = no retrace;
  for a ScheduledStep the most any of its variants holds)."""
  if isinstance(jitted, ScheduledStep):
    counts = [compile_count(f) for f in jitted.variants.values()]
    return None if None in counts else max(counts)
  size = getattr(jitted, '_cache_size', None)
  return size() if callable(size) else None


def write_json(path, record):
  if jax.process_index() == 0:
    with open(path, 'w') as f:
      json.dump(record, f, indent=2, default=_jsonable)


def _jsonable(x):
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  raise TypeError(f'{type(x)} is not JSON serialisable')


def run(state, *, train_step, batches, start, num_steps, key, mesh, ckpt,
        reporter, log_every, checkpoint_every, hooks=()):
  """The step loop every trainer shares.

  Runs `state, metrics = train_step(state, batch, key)` from step `start` to
  `num_steps` on `batches.iterate(start)`, logging averaged metrics every
  `log_every` steps, calling each `(every, fn)` of `hooks` as `fn(step, state)`
  every `every` steps, and checkpointing every `checkpoint_every` steps, on
  SIGTERM and at the end. Non-finite metrics raise NonFiniteError with the
  last good checkpoint complete on disk.

  Returns:
    (state, step, preempted, stats): stats holds the final step, the loop's
    wall-clock seconds, train_step's compile count and RSS before and after.
  """
  data_sharding = sharding.data_sharded(mesh)
  rss_start, t_start = rss_mib(), time.perf_counter()
  stats = lambda: {'step': step, 'train_seconds': time.perf_counter() - t_start,
                   'train_step_compiles': compile_count(train_step),
                   'rss_mib_start': rss_start, 'rss_mib_end': rss_mib()}
  buffer = MetricsBuffer()
  preempt = Preemption()
  data_iter = batches.iterate(start)
  step = start
  try:
    with preempt.handler():
      while step < num_steps:
        batch = sharding.shard_batch(next(data_iter), data_sharding)
        if isinstance(train_step, ScheduledStep):
          state, metrics = train_step(state, batch, key, step=step)
        else:
          state, metrics = train_step(state, batch, key)
        buffer.push(step, metrics)
        step += 1
        if step % log_every == 0 or step == num_steps:
          reporter.scalars(step, dict(buffer.flush(),
                                      rss_mib=rss_mib() or 0.0))
        for every, fn in hooks:
          if every and step % every == 0:
            fn(step, state)
        if step % checkpoint_every == 0 or preempt.requested:
          buffer.flush()  # Never checkpoint a state whose step was not checked.
          ckpt.save(step, state, force=preempt.requested)
        if preempt.requested:
          ckpt.wait()
          logging.warning('Preempted at step %d; checkpoint written.', step)
          return state, step, True, stats()
  finally:
    # A failing step must not abandon an in-flight async save: the last
    # good checkpoint has to be complete on disk before the error leaves.
    ckpt.wait()
  buffer.flush()
  if ckpt.latest_step() != step:
    ckpt.save(step, state, force=True)
  ckpt.wait()
  return state, step, False, stats()
