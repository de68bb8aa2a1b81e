"""SNGAN-style DCGAN on CIFAR-10 (for users with the data or TFDS access).

Hinge loss, spectral normalisation in D, 32x32 RGB. Variants: 'cond'
(class-conditional with a projection discriminator), 'folder' (an image folder
with one sub-directory per class in --config.data.path), 'smoke' (32x32
procedural shapes, seconds).
"""

from gensynth.configs import common
from gensynth.configs import gan_common


def get_config(arg=None):
  variants = common.parse_variants('gan_cifar10', arg,
                                       ('cond', 'folder', 'smoke'))
  c = gan_common.base_config()
  c.num_steps = 100_000
  c.batch_size = 64
  c.checkpoint_every = 2000
  c.image_every = 2000
  c.data.update(source='tfds', name='cifar10', download=True, channels=3)
  c.model.update(latent_dim=128, g_widths=(512, 256, 128),
                 d_widths=(128, 256, 512), spectral_norm=True)
  c.loss.update(kind='hinge', d_steps=2)
  c.ema.update(decay=0.9999, start=2000)
  c.g_optim.update(lr=2e-4, b1=0.0, b2=0.9)
  c.d_optim.update(lr=2e-4, b1=0.0, b2=0.9)
  if 'folder' in variants:
    c.data.update(source='folder', path='~/data/cifar10', download=False,
                  image_size=32)
  if 'cond' in variants:
    c.model.conditional = True
  if 'smoke' in variants:
    c.data.update(source='shapes', image_size=32, download=False)
    gan_common.smoke(c)
  return c
