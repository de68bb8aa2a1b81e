"""train_and_evaluate for the feature classifier (loading it back:
gensynth.evaluation.runs.load_classifier)."""

import functools

import jax

from gensynth import errors
from gensynth.evaluation import classifier as classifier_eval
from gensynth.steps import classifier as classifier_steps
from gensynth.train import loop
from gensynth.train import state as state_lib


def _validate(config):
  for name in ('batch_size', 'num_steps', 'log_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise errors.ConfigError(
          f'config.{name}={config[name]} must be positive.')


def train_and_evaluate(config, workdir):
  """Trains the classifier; returns (and writes) final test accuracy."""
  _validate(config)
  mesh = loop.prepare(config, workdir,
                      ('config.eval.batch_size', config.eval.batch_size))
  train_src, test_src, batches = loop.load_data(config, config.batch_size)
  _, state = state_lib.classifier(config, mesh, train_src.image_shape,
                                  train_src.num_classes)
  ckpt, state, start, reporter = loop.resume(config, workdir, state, train_src)
  train_step = loop.jit_train_step(
      functools.partial(classifier_steps.train_step,
                        label_smoothing=config.loss.label_smoothing,
                        max_shift=config.data.augment_shift), mesh)
  eval_fn = classifier_eval.make_eval_fn(mesh, state.apply_fn)

  def periodic_eval(step, state):
    reporter.scalars(step, classifier_eval.evaluate_accuracy(
        mesh, state.params, state.apply_fn, test_src,
        batch_size=config.eval.batch_size,
        value_range=config.data.value_range, eval_fn=eval_fn), prefix='test')

  state, step, preempted, stats = loop.run(
      state, step_for=lambda _: train_step, batches=batches, start=start,
      num_steps=config.num_steps,
      key=jax.random.fold_in(jax.random.key(config.seed), 1), mesh=mesh,
      ckpt=ckpt, reporter=reporter, log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      hooks=[(config.eval_every, periodic_eval)])
  if preempted:
    reporter.close()
    return {'preempted': True, 'step': step}
  final = classifier_eval.evaluate_accuracy(
      mesh, state.params, state.apply_fn, test_src,
      batch_size=config.eval.batch_size, value_range=config.data.value_range,
      eval_fn=eval_fn)
  return loop.finish(workdir, step, final, stats, reporter=reporter,
                     ckpt=ckpt)
