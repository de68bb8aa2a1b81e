"""train_and_evaluate for the learned fusion network (gensynth.models.fusion).

Loading a trained network back: gensynth.synth.learned.load.
"""

import functools
import os

import jax
import numpy as np

from gensynth import errors
from gensynth.configs import common
from gensynth.data import stacks as stacks_lib
from gensynth.models import fusion as fusion_model
from gensynth.steps import fusion as fusion_steps
from gensynth.train import loop
from gensynth.train import sharding
from gensynth.train import state as state_lib

LOSS_OF_TASK = {'exposure': 'mef_ssim', 'multifocus': 'ssim_grad'}


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise errors.ConfigError(
          f'config.{name}={config[name]} must be positive.')
  d, m = config.data, config.model
  if d.task not in stacks_lib.TASKS:
    raise errors.ConfigError(f'config.data.task={d.task!r}; expected one of '
                             f'{stacks_lib.TASKS}.')
  if config.loss.kind != LOSS_OF_TASK[d.task]:
    raise errors.ConfigError(
        f'config.loss.kind={config.loss.kind!r} does not fit '
        f'config.data.task={d.task!r}; expected '
        f'{LOSS_OF_TASK[d.task]!r}.')
  if m.prior not in fusion_model.PRIORS or m.blend not in fusion_model.BLENDS:
    raise errors.ConfigError(
        f'config.model.prior={m.prior!r}, blend={m.blend!r}; expected one of '
        f'{fusion_model.PRIORS} and one of {fusion_model.BLENDS}.')
  stacks_lib.check_jpeg_qualities(d.source_jpeg, 'config.data.source_jpeg')
  if d.defocus_blur not in stacks_lib.BLURS:
    raise errors.ConfigError(
        f'config.data.defocus_blur={d.defocus_blur!r}; expected one of '
        f'{stacks_lib.BLURS}.')
  if d.defocus_regions not in stacks_lib.REGIONS:
    raise errors.ConfigError(
        f'config.data.defocus_regions={d.defocus_regions!r}; expected one '
        f'of {stacks_lib.REGIONS}.')
  common.require_non_negative(config, 'loss.decisive_weight')
  common.require_non_negative(config, 'loss.qabf_weight')
  if min(d.ks) < 2:
    raise errors.ConfigError(f'config.data.ks={tuple(d.ks)}: fusion needs at '
                             'least two sources per example.')
  if d.task == 'exposure' and d.crop < 44:
    raise errors.ConfigError(f'config.data.crop={d.crop}: MEF-SSIM needs '
                             'crops of at least 44 pixels.')


def photos(data_config):
  """The photographs named by config.data.photos ('skimage' and folders)."""
  out = []
  for part in [p for p in data_config.photos.split(',') if p]:
    out.extend(stacks_lib.bundled_photos() if part == 'skimage' else
               stacks_lib.read_photos(part))
  return out


def split_scenes(data_config):
  """(training scenes, held-out scenes) of config.data.stacks_dir."""
  d = data_config
  if not d.stacks_dir:
    return [], []
  scenes = stacks_lib.select_scenes(d.stacks_dir, d.scenes, d.exclude_scenes)
  if d.fold < 0:
    return scenes, []
  held = scenes[d.fold * d.fold_size:(d.fold + 1) * d.fold_size]
  if not held:
    raise errors.ConfigError(
        f'config.data.fold={d.fold}: only {len(scenes)} scenes, '
        f'{d.fold_size} per fold.')
  return [s for s in scenes if s not in held], held


def _eval_batches(config, batches):
  """Validation batches: fixed examples from the evaluation seed (never a
  training draw), one batch per K of config.data.ks."""
  d = config.data
  out = []
  for k in d.ks:
    n = max(1, d.eval_examples // len(d.ks))
    ex = [batches.example(d.eval_seed, i, k, stream=2) for i in range(n)]
    out.append({key: np.stack([e[key] for e in ex]) for key in ex[0]})
  return out


def prior_only(params):
  """The parameters of the untrained correction: the prior alone (Mertens
  fusion for prior='mertens' with its pyramid blend and weights_level=0;
  with weights_level=1, Mertens' quality at half resolution; with a fixed
  prior_exponent p, q^p alone)."""
  out = dict(params, head=jax.tree.map(np.zeros_like, params['head']))
  if 'prior_scale' in params:  # a learned exponent starts at 1
    out['prior_scale'] = np.ones_like(params['prior_scale'])
  return out


def train_and_evaluate(config, workdir):
  """Trains the fusion network; returns (and writes) final validation
  quality beside the prior's."""
  _validate(config)
  mesh = loop.prepare(config, workdir)
  d = config.data
  train_scenes, held_out = split_scenes(d)
  stacks = [stacks_lib.read_stack(os.path.join(d.stacks_dir, s))
            for s in train_scenes] if d.task == 'exposure' else []
  batches = stacks_lib.FusionBatches(
      d.task, photos=photos(d), stacks=stacks, crop=d.crop, ks=d.ks,
      global_batch_size=config.batch_size, seed=config.seed,
      real_fraction=d.real_fraction, process_index=jax.process_index(),
      process_count=jax.process_count(), defocus_blur=d.defocus_blur,
      defocus_layers=d.defocus_layers, defocus_regions=d.defocus_regions,
      source_jpeg=tuple(d.source_jpeg))
  model, state = state_lib.fusion(config, mesh)
  ckpt, state, start, reporter = loop.resume(
      config, workdir, state, task=d.task, train_scenes=train_scenes,
      held_out_scenes=held_out)
  kind = config.loss.kind
  train_step = loop.jit_train_step(functools.partial(
      fusion_steps.train_step, loss=kind,
      smooth_weight=config.loss.smooth_weight,
      grad_weight=config.loss.grad_weight,
      decisive_weight=config.loss.decisive_weight,
      qabf_weight=config.loss.qabf_weight), mesh)
  eval_fn = jax.jit(functools.partial(fusion_steps.eval_step,
                                      apply_fn=model.apply, loss=kind))
  val = [jax.device_put(b, sharding.replicated(mesh))
         for b in _eval_batches(config, batches)]
  metric = 'mef_ssim' if kind == 'mef_ssim' else 'ssim'

  pairs = [b for b in val if b['sources'].shape[1] == 2
           and d.task == 'multifocus']
  pair_fn = jax.jit(functools.partial(fusion_steps.pair_scores,
                                      apply_fn=model.apply))
  # The sharp photos' scores: the ground truth's, the same at every step.
  sharp_fn = jax.jit(fusion_steps.sharp_pair_scores)
  sharp = [sharp_fn(b) for b in pairs]

  def evaluate(params):
    learned = float(np.mean([eval_fn(params, b) for b in val]))
    prior = float(np.mean([eval_fn(prior_only(params), b) for b in val]))
    out = {metric: learned, f'{metric}_prior_only': prior,
           f'{metric}_gain': learned - prior}
    if pairs:
      # The multi-focus benchmark's scores on validation pairs (K = 2).
      for name, scores in (
          ('', [pair_fn(params, b) for b in pairs]),
          ('_prior_only', [pair_fn(prior_only(params), b) for b in pairs]),
          ('_sharp', sharp)):
        for k in ('qabf', 'mi'):
          out[k + name] = float(np.mean([sc[k] for sc in scores]))
    return out

  state, step, preempted, stats = loop.run(
      state, step_for=lambda _: train_step, batches=batches, start=start,
      num_steps=config.num_steps, key=jax.random.key(config.seed), mesh=mesh,
      ckpt=ckpt, reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.eval_every, lambda s, st: reporter.scalars(
          s, evaluate(jax.device_get(st.params)), prefix='val'))])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  return loop.finish(workdir, step, evaluate(jax.device_get(state.params)),
                     stats, reporter=reporter, ckpt=ckpt)
