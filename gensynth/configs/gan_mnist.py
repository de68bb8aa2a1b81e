"""DCGAN on MNIST (the FID / precision-recall benchmark in BUILD_NOTES.md).

Variants: '' (TFDS mnist), 'idx' (four MNIST IDX files in --config.data.path),
'cond' (class-conditional: conditional normalisation in G, projection D),
'vector' / 'text' (conditioned on Morpho-MNIST measurements of each digit:
a vector of the one-hot digit, thickness, slant, width, height and area, or
a caption such as "a thick seven slanting right"; gensynth.data.morpho),
'smooth' (nearest 2x upsampling + 3x3 convs in G instead of transposed convs,
minibatch-std feature in D; the default stays the pytorch/examples DCGAN
layout that the throughput benchmark compares), 'r1' (hinge loss and lazy R1,
gamma 1 every 16 steps), 'adam0' (both optimizers Adam lr 4e-4, b1 0,
b2 0.99), 'shared' (one fake batch per step for D's and G's update, as
pytorch/examples' DCGAN), 'wide' (D widths 64-128 instead of 32-64), 'smoke'
(28x28 grey procedural shapes, seconds). 'idx,cond,smooth,r1,adam0,shared,wide'
is the 30-minute FID benchmark recipe in BUILD_NOTES.md; with 'vector' or
'text' in place of 'cond' it is the condition-fidelity benchmark's.
"""

from gensynth.configs import common
from gensynth.configs import gan_common


def get_config(arg=None):
  variants = common.parse_variants('gan_mnist', arg,
                                       ('idx', 'cond', 'vector', 'text',
                                        'smooth', 'r1', 'adam0', 'shared',
                                        'wide', 'smoke'))
  c = gan_common.base_config()
  c.num_steps = 40_000
  c.data.update(source='tfds', name='mnist', download=True, channels=1)
  c.model.update(latent_dim=64, g_widths=(128, 64), d_widths=(32, 64))
  c.loss.update(kind='ns')
  if 'idx' in variants:
    c.data.update(source='idx', path='~/data/mnist', download=False)
  common.condition_variants(c, variants)
  if 'smooth' in variants:
    c.model.update(g_upsample='nearest', d_mbstd_group=4)
  if 'r1' in variants:
    c.loss.update(kind='hinge', r1_weight=1.0, r1_every=16)
  if 'adam0' in variants:
    for opt in (c.g_optim, c.d_optim):
      opt.update(lr=4e-4, b1=0.0, b2=0.99)
  if 'shared' in variants:
    c.loss.shared_fakes = True
  if 'wide' in variants:
    c.model.d_widths = (64, 128)
  if 'smoke' in variants:
    c.data.update(source='shapes', image_size=28, download=False)
    gan_common.smoke(c)
  return c
