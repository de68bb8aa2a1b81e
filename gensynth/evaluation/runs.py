"""Loading a trained run back from its workdir, without its training data
when the run wrote info.json."""

from gensynth import data as data_lib
from gensynth import errors
from gensynth.data import conditions as conditions_lib
from gensynth.train import checkpoint as ckpt_lib
from gensynth.train import sharding
from gensynth.train import state as state_lib
from gensynth.train import workdir as workdir_lib


def info_of(config, workdir):
  """The run's data facts (image_shape, num_classes, condition): info.json,
  else read from the training split. Runs from before conditions existed
  have no 'condition': they were conditioned on labels."""
  info = workdir_lib.load_info(workdir)
  if not info:
    (src,), _ = data_lib.encode_text(
        [data_lib.load_split(config.data, 'train')],
        max_len=config.data.get('text_max_len', 0))
    info = {'image_shape': src.image_shape, 'num_classes': src.num_classes,
            'condition': src.condition_spec}
  info.setdefault('condition', {'kind': 'label',
                                'num_classes': info['num_classes']})
  return info


def vocabulary(info):
  """The run's text Vocabulary (None unless it is text-conditioned)."""
  spec = info.get('condition') or {}
  if spec.get('kind') != 'text':
    return None
  return conditions_lib.Vocabulary.from_json(spec)


def load_splits(config, info, splits=('train', 'test')):
  """The run's data splits, captions tokenised with the run's vocabulary."""
  sources, _ = data_lib.encode_text(
      [data_lib.load_split(config.data, s) for s in splits],
      vocabulary(info))
  return sources


def load_vae(config, workdir, *, step=None):
  """(TrainState, info) of a trained VAE run."""
  info = info_of(config, workdir)
  mesh = sharding.make_mesh()
  _, state = state_lib.vae(config, mesh, tuple(info['image_shape']),
                           info['num_classes'], config.num_steps,
                           info['condition'])
  return ckpt_lib.restore_trained(workdir, state, step=step), info


def load_gan(config, workdir, *, step=None):
  """(mesh, GANState, info) of a trained GAN run."""
  info = info_of(config, workdir)
  mesh = sharding.make_mesh()
  _, _, state = state_lib.gan(config, mesh, tuple(info['image_shape']),
                              info['num_classes'], info['condition'])
  return mesh, ckpt_lib.restore_trained(workdir, state, step=step), info


class FeatureExtractorError(errors.CheckpointNotFoundError):
  """The classifier workdir for generative metrics is missing or unusable."""


def load_classifier(workdir, *, step=None):
  """Rebuilds a trained classifier from its workdir.

  Returns:
    (config, model, params, info).
  """
  try:
    config = workdir_lib.load_config(workdir)
  except errors.CheckpointNotFoundError as e:
    raise FeatureExtractorError(
        f'no classifier at {workdir!r} ({e}). Train one with '
        'python -m launch.train --config=gensynth/configs/classifier_mnist.py '
        f'--workdir={workdir} (or pass the workdir of one you trained).'
    ) from e
  info = workdir_lib.load_info(workdir)
  if config.trainer != 'classifier' or not info:
    raise FeatureExtractorError(f'{workdir!r} holds a {config.trainer!r} run, '
                                'not a classifier.')
  mesh = sharding.make_mesh()
  model, state = state_lib.classifier(config, mesh, tuple(info['image_shape']),
                                      info['num_classes'])
  ckpt = ckpt_lib.Checkpointer(workdir, save_every=1)
  if ckpt.latest_step() is None:
    raise FeatureExtractorError(
        f'the classifier in {workdir!r} has no checkpoint; its training did '
        'not save one. Re-run launch.train on that workdir.')
  state = ckpt.restore_or_init(state, step=step)
  ckpt.close()
  return config, model, state.params, info


def load_fusion(workdir, *, step=None):
  """(FusionNet, params, info) of a trained learned-fusion run.

  Raises:
    errors.CheckpointNotFoundError: no run or no checkpoint in `workdir`.
    errors.CheckpointError: `workdir` holds another kind of run.
  """
  config = workdir_lib.load_config(workdir)
  if config.trainer != 'fusion':
    raise errors.CheckpointError(
        f'{workdir!r} holds a {config.trainer!r} run, not a fusion network; '
        'pass the workdir of a run trained with '
        'gensynth/configs/fusion_exposure.py or fusion_multifocus.py.')
  mesh = sharding.make_mesh()
  model, state = state_lib.fusion(config, mesh)
  state = ckpt_lib.restore_trained(workdir, state, step=step)
  return model, state.params, workdir_lib.load_info(workdir)
