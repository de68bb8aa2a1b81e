"""The step loop every trainer shares, and its set-up: mesh, data, resume.

Kept free of any model so the VAE, GAN and classifier trainers run the same
loop. File handling lives in gensynth.train.workdir, process measurements in
gensynth.train.diagnostics.
"""

import contextlib
import math
import os
import signal
import threading
import time

import jax
from absl import logging

from gensynth import data as data_lib
from gensynth import errors
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import diagnostics
from gensynth.train import reporting
from gensynth.train import sharding
from gensynth.train import workdir as workdir_lib


def prepare(config, workdir, *batch_sizes):
  """Checks the workdir and batch sizes, then returns the device mesh.

  `batch_sizes` are (name, size) pairs checked against the device count
  besides config.batch_size. Everything here fails before any training.
  """
  workdir_lib.check_writable(workdir)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  for name, size in batch_sizes:
    sharding.check_batch_size(size, mesh, name)
  logging.info('Devices: %d global, %d local, process %d/%d', mesh.devices.size,
               jax.local_device_count(), jax.process_index(),
               jax.process_count())
  return mesh


def load_data(config, global_batch_size, **batch_opts):
  """(train source, test source, this process's shuffled train batches).

  Captions become token ids over a vocabulary built from the training
  split's captions (saved with the run by `resume`)."""
  (train_src, test_src), _ = data_lib.encode_text(
      [data_lib.load_split(config.data, 'train'),
       data_lib.load_split(config.data, 'test')],
      max_len=config.data.get('text_max_len', 0))
  batches = data_lib.BatchIterator(
      train_src, global_batch_size=global_batch_size, seed=config.seed,
      value_range=config.data.value_range, process_index=jax.process_index(),
      process_count=jax.process_count(), **batch_opts)
  return train_src, test_src, batches


def resume(config, workdir, state, train_src=None, **info):
  """Restores the newest valid checkpoint (or keeps the fresh `state`), writes
  config.json/info.json and opens the reporter.

  Returns:
    (checkpointer, state, start step, reporter).
  """
  ckpt = ckpt_lib.Checkpointer(workdir, save_every=config.checkpoint_every,
                               keep=config.keep_checkpoints)
  state = ckpt.restore_or_init(state)
  start = int(state.step)
  if train_src is not None:
    info = dict(image_shape=train_src.image_shape,
                num_classes=train_src.num_classes,
                condition=train_src.condition_spec, **info)
  workdir_lib.save_config(workdir, config, **info)
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
        raise errors.NonFiniteError(
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


def run(state, *, step_for, batches, start, num_steps, key, mesh, ckpt,
        reporter, log_every, checkpoint_every, hooks=()):
  """The step loop every trainer shares.

  Runs `state, metrics = step_for(step)(state, batch, key)` from step `start`
  to `num_steps` on `batches.iterate(start)`: `step_for` returns the jitted
  step for a step number (one function for most trainers; the GAN with lazy
  R1 alternates two). Logs averaged metrics every `log_every` steps, calls
  each `(every, fn)` of `hooks` as `fn(step, state)` every `every` steps, and
  checkpoints every `checkpoint_every` steps, on SIGTERM and at the end.
  Non-finite metrics raise errors.NonFiniteError with the last good
  checkpoint complete on disk.

  Returns:
    (state, step, preempted, stats): stats holds the final step, the loop's
    wall-clock seconds, the step functions' compile count (the most any of
    them holds) and RSS before and after.
  """
  data_sharding = sharding.data_sharded(mesh)
  rss_start, t_start = diagnostics.rss_mib(), time.perf_counter()
  used = {}  # the distinct step functions step_for returned
  stats = lambda: {'step': step, 'train_seconds': time.perf_counter() - t_start,
                   'train_step_compiles': diagnostics.compile_count(
                       *used.values()),
                   'rss_mib_start': rss_start,
                   'rss_mib_end': diagnostics.rss_mib()}
  buffer = MetricsBuffer()
  preempt = Preemption()
  data_iter = batches.iterate(start)
  step = start
  try:
    with preempt.handler():
      while step < num_steps:
        batch = sharding.shard_batch(next(data_iter), data_sharding)
        train_step = step_for(step)
        used[id(train_step)] = train_step
        state, metrics = train_step(state, batch, key)
        buffer.push(step, metrics)
        step += 1
        if step % log_every == 0 or step == num_steps:
          reporter.scalars(step, dict(buffer.flush(),
                                      rss_mib=diagnostics.rss_mib() or 0.0))
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
  except BaseException:
    # The event writer's thread must not outlive an error (at interpreter
    # exit it would print a traceback of its own).
    reporter.close()
    raise
  finally:
    # A failing step must not abandon an in-flight async save: the last
    # good checkpoint has to be complete on disk before the error leaves.
    ckpt.wait()
  buffer.flush()
  if ckpt.latest_step() != step:
    ckpt.save(step, state, force=True)
  ckpt.wait()
  return state, step, False, stats()


def finish(workdir, step, final, stats, *, reporter, ckpt):
  """Reports the final metrics (with the loop's stats), writes
  final_metrics.json and closes the reporter and checkpointer; returns them."""
  final.update(stats)
  reporter.scalars(step, final, prefix='final')
  reporter.close()
  workdir_lib.write_json(os.path.join(workdir, 'final_metrics.json'), final)
  ckpt.close()
  return final
