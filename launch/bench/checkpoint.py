"""Process memory over many asynchronous checkpoint saves (the soak check)."""

import time

import numpy as np
from absl import flags

from launch import distributed

FLAGS = flags.FLAGS


def checkpoint_rss():
  """Process RSS over FLAGS.steps checkpoint saves of a GAN-sized state (60
  arrays, 30 MB) through gensynth's Checkpointer (orbax, async, keep 3), with
  and without OCDBT, and the per-call growth of tensorstore's
  KvStore.Spec.to_json (which orbax calls for every array it writes)."""
  import gc  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import tensorstore as ts  # pylint: disable=g-import-not-at-top

  from gensynth.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from gensynth.train import diagnostics  # pylint: disable=g-import-not-at-top

  distributed.initialize()  # the launch scripts' malloc arena limit
  rng = np.random.default_rng(0)
  shapes = [(96, 6272), (6272,), (4, 4, 64, 128), (64,), (4, 4, 1, 64),
            (1,)] * 10
  state = {f'p{i}': jax.numpy.asarray(rng.standard_normal(s, np.float32))
           for i, s in enumerate(shapes)}
  record = {'bench': 'checkpoint_rss', 'saves': FLAGS.steps,
            'state_mb': round(sum(np.prod(s) for s in shapes) * 4 / 1e6, 1)}
  for ocdbt in (True, False):
    workdir = tempfile.mkdtemp(prefix='gensynth_ckpt_rss_')
    try:
      ckpt = ckpt_lib.Checkpointer(workdir, save_every=1, keep=3,
                                   use_ocdbt=ocdbt)
      rows = []
      for i in range(FLAGS.steps):
        ckpt.save(i, state)
        time.sleep(0.05)  # a training step between saves
        if i % 50 == 0 or i == FLAGS.steps - 1:
          ckpt.wait()
          gc.collect()
          rows.append([i + 1, round(diagnostics.rss_mib(), 1)])
      ckpt.close()
    finally:
      shutil.rmtree(workdir, ignore_errors=True)
    record['ocdbt' if ocdbt else 'no_ocdbt'] = rows
  gc.collect()
  before, n = diagnostics.rss_mib(), 20_000
  spec = ts.KvStore.Spec({'driver': 'file', 'path': '/tmp/x/'})
  for _ in range(n):
    spec.to_json()
  gc.collect()
  record['tensorstore_to_json_bytes_per_call'] = round(
      (diagnostics.rss_mib() - before) * 2**20 / n)
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  record['versions'] = {p: metadata.version(p) for p in (
      'tensorstore', 'orbax-checkpoint', 'jax')}
  return record
