r"""Same-process A/B of gensynth against an older checkout of itself.

  git worktree add /tmp/gensynth_before <commit>
  python -m launch.bench.ab --old_tree=/tmp/gensynth_before [--rounds=7]

Copies the old checkout's `gensynth/` package to a temporary directory as
`gensynth_old` (imports renamed), then times, in alternating rounds in this
one process, the same computation with the current and the old package:
the VAE train step (vae_mnist), the GAN train step (gan_mnist:cond), the
6-level pyramid blend of two 2048x2048x3 images and the exposure fusion of
three 1024x1024x3 images. Prints JSON: median ms of each and new/old, and,
for the two train steps, the largest parameter difference after
--trajectory_steps steps from the same initial state and batches (0 when the
restructured code trains exactly as the old one).
"""

import functools
import importlib
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

flags.DEFINE_string('old_tree', None, 'A checkout of the older gensynth.')
flags.DEFINE_integer('rounds', 7, 'Alternating rounds.')
flags.DEFINE_integer('steps', 10, 'Calls per round.')
flags.DEFINE_integer('trajectory_steps', 20, 'Train steps of the parameter '
                     'comparison.')
flags.mark_flags_as_required(['old_tree'])
FLAGS = flags.FLAGS


def _import_old(tree):
  """The older package, importable as gensynth_old."""
  root = tempfile.mkdtemp(prefix='gensynth_ab_')
  dst = os.path.join(root, 'gensynth_old')
  shutil.copytree(os.path.join(tree, 'gensynth'), dst)
  for dirpath, _, files in os.walk(dst):
    for f in files:
      if f.endswith('.py'):
        p = os.path.join(dirpath, f)
        with open(p) as fh:
          s = fh.read()
        s = re.sub(r'\bgensynth\b(?=[.\s])', 'gensynth_old', s)
        with open(p, 'w') as fh:
          fh.write(s)
  sys.path.insert(0, root)
  return importlib.import_module('gensynth_old')


def _train_step_case(pkg, kind, mesh_fn):
  """(jitted step, state, batch) of `pkg`'s VAE or GAN:cond step."""
  import jax  # pylint: disable=g-import-not-at-top
  name = pkg.__name__
  sharding = importlib.import_module(f'{name}.train.sharding')
  mesh = mesh_fn(sharding)
  rng = np.random.default_rng(0)
  if kind == 'vae':
    cfg = importlib.import_module(f'{name}.configs.vae_mnist').get_config()
    trainer = importlib.import_module(f'{name}.train.vae')
    steps = importlib.import_module(f'{name}.steps.vae')
    state_lib = _maybe(f'{name}.train.state')
    if state_lib:
      _, state = state_lib.vae(cfg, mesh, (28, 28, 1), 10, 10_000)
      kw = trainer.step_kwargs(cfg)
    else:
      _, state = trainer.build(cfg, mesh, (28, 28, 1), 10, 10_000)
      kw = trainer._step_kwargs(cfg)  # pylint: disable=protected-access
    x = (rng.random((cfg.batch_size, 28, 28, 1)) < 0.3).astype(np.float32)
    y = np.zeros(cfg.batch_size, np.int32)
  else:
    cfg = importlib.import_module(f'{name}.configs.gan_mnist').get_config(
        'cond')
    trainer = importlib.import_module(f'{name}.train.gan')
    steps = importlib.import_module(f'{name}.steps.gan')
    state_lib = _maybe(f'{name}.train.state')
    build = state_lib.gan if state_lib else trainer.build
    _, _, state = build(cfg, mesh, (28, 28, 1), 10)
    kw = trainer.step_kwargs(cfg, 10)
    x = rng.uniform(-1, 1, (cfg.batch_size, 28, 28, 1)).astype(np.float32)
    y = (np.arange(cfg.batch_size) % 10).astype(np.int32)
  batch = sharding.shard_batch({'image': x, 'label': y},
                               sharding.data_sharded(mesh))
  step = jax.jit(functools.partial(steps.train_step, **kw), donate_argnums=0)
  return step, state, batch


def _maybe(module):
  try:
    return importlib.import_module(module)
  except ImportError:
    return None


def _timed(cases):
  """Alternating rounds over {name: (fn() -> blocks)}; median ms each."""
  times = {k: [] for k in cases}
  for fn in cases.values():
    fn()  # compile
  for _ in range(FLAGS.rounds):
    for k, fn in cases.items():
      t = time.perf_counter()
      for _ in range(FLAGS.steps):
        fn()
      times[k].append((time.perf_counter() - t) / FLAGS.steps)
  return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import gensynth  # pylint: disable=g-import-not-at-top
  old = _import_old(FLAGS.old_tree)
  record = {'jax_version': jax.__version__, 'rounds': FLAGS.rounds,
            'steps': FLAGS.steps}
  for kind in ('vae', 'gan'):
    cases = {}
    for label, pkg in (('new', gensynth), ('old', old)):
      step, state, batch = _train_step_case(pkg, kind,
                                            lambda s: s.make_mesh())
      box = [state]
      key = jax.random.key(0)

      def run(step=step, box=box, batch=batch, key=key):
        box[0], m = step(box[0], batch, key)
        jax.block_until_ready(m)
      cases[label] = run
    record[f'{kind}_train_step'] = _summary(_timed(cases))
  for kind in ('vae', 'gan'):
    finals = []
    for pkg in (gensynth, old):
      step, state, batch = _train_step_case(pkg, kind,
                                            lambda s: s.make_mesh())
      for i in range(FLAGS.trajectory_steps):
        state, _ = step(state, batch, jax.random.key(i))
      finals.append(jax.device_get(state))
    diffs = [float(np.max(np.abs(np.asarray(x, np.float64) -
                                 np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(finals[0]),
                             jax.tree.leaves(finals[1]))
             if np.issubdtype(np.asarray(x).dtype, np.floating)]
    record[f'{kind}_train_step']['max_param_diff_after_steps'] = max(diffs)
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.uniform(size=(2048, 2048, 3)), jnp.float32)
          for _ in range(2))
  m = jnp.asarray(np.tile(np.linspace(0, 1, 2048, dtype=np.float32),
                          (2048, 1)))
  stack = jnp.stack([a, b])
  imgs = jnp.asarray(rng.uniform(size=(3, 1024, 1024, 3)), jnp.float32)
  for bench, make in (
      ('pyramid_blend', lambda p: jax.jit(lambda x, mm: p.synth.blend
                                          .multiband_blend(
                                              x, p.synth.blend
                                              .two_image_masks(mm)[..., None],
                                              levels=6))),
      ('exposure_fusion', lambda p: jax.jit(
          lambda x: p.synth.fusion.exposure_fusion(x)))):
    cases = {}
    for label, pkg in (('new', gensynth), ('old', old)):
      importlib.import_module(f'{pkg.__name__}.synth.blend')
      importlib.import_module(f'{pkg.__name__}.synth.fusion')
      fn = make(pkg)
      args = (stack, m) if bench == 'pyramid_blend' else (imgs,)
      cases[label] = (lambda fn=fn, args=args:
                      jax.block_until_ready(fn(*args)))
    record[bench] = _summary(_timed(cases))
  import json  # pylint: disable=g-import-not-at-top
  print(json.dumps(record, indent=2))


def _summary(ms):
  return {'new_ms': round(ms['new'], 3), 'old_ms': round(ms['old'], 3),
          'new_over_old': round(ms['new'] / ms['old'], 3)}


if __name__ == '__main__':
  app.run(main)
