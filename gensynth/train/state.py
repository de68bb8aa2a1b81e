"""Models, optimizers and initial train states from a config.

Trainers start from these states; evaluators (gensynth.evaluation) restore
checkpoints into them. Each state is created by one jitted init, replicated
over the mesh.
"""

import functools

import jax

from gensynth.models import classifier as classifier_model
from gensynth.models import fusion as fusion_model
from gensynth.models import gan as gan_model
from gensynth.models import vae as vae_model
from gensynth.steps import classifier as classifier_steps
from gensynth.steps import fusion as fusion_steps
from gensynth.steps import gan as gan_steps
from gensynth.steps import vae as vae_steps
from gensynth.train import optim
from gensynth.train import sharding


def _init(fn, mesh, seed):
  return jax.jit(fn, out_shardings=sharding.replicated(mesh))(
      jax.random.key(seed))


def cond_spec(config, spec):
  """The vector/text condition spec a conditional model is built for, or
  None (class ids, or an unconditional model). `spec` is a split's
  `condition_spec` or the 'condition' entry of a run's info.json (absent in
  runs from before conditions: labels)."""
  if not config.model.conditional or not spec or spec['kind'] == 'label':
    return None
  return spec


def vae(config, mesh, image_shape, num_classes, total_steps, spec=None):
  """(VAE model, initial TrainState); `spec` as in cond_spec."""
  spec = cond_spec(config, spec)
  model = vae_model.from_config(config.model, image_shape, num_classes, spec)
  tx = optim.make_optimizer(config.optim, total_steps)
  return model, _init(functools.partial(
      vae_steps.create_state, model=model, tx=tx, image_shape=image_shape,
      cond_spec=spec), mesh, config.seed)


def gan_classes(config, num_classes, spec=None):
  """The generator's class count: the data's if conditional on class ids,
  else 0 (unconditional, or conditioned on vectors or text)."""
  if cond_spec(config, spec) is not None:
    return 0
  return num_classes if config.model.conditional else 0


def gan(config, mesh, image_shape, num_classes, spec=None):
  """(generator, discriminator, initial GANState); `spec` as in cond_spec."""
  spec = cond_spec(config, spec)
  gen, disc = gan_model.from_config(config.model, image_shape, num_classes,
                                    spec)
  g_tx = optim.make_optimizer(config.g_optim, config.num_steps)
  d_tx = optim.make_optimizer(config.d_optim, config.num_steps)
  return gen, disc, _init(functools.partial(
      gan_steps.create_state, generator=gen, discriminator=disc, g_tx=g_tx,
      d_tx=d_tx, latent_dim=config.model.latent_dim, image_shape=image_shape,
      cond_spec=spec), mesh, config.seed)


def classifier(config, mesh, image_shape, num_classes):
  """(classifier model, initial TrainState)."""
  model = classifier_model.from_config(config.model, num_classes)
  tx = optim.make_optimizer(config.optim, config.num_steps)
  return model, _init(functools.partial(
      classifier_steps.create_state, model=model, tx=tx,
      image_shape=image_shape), mesh, config.seed)


def fusion(config, mesh):
  """(FusionNet, initial TrainState)."""
  model = fusion_model.from_config(config.model)
  tx = optim.make_optimizer(config.optim, config.num_steps)
  return model, _init(functools.partial(
      fusion_steps.create_state, model=model, tx=tx), mesh, config.seed)
