"""Conv VAE on binarized MNIST (the NLL benchmark in BUILD_NOTES.md).

Variants: '' (TFDS mnist), 'idx' (four MNIST IDX files in --config.data.path),
'cond' (class-conditional), 'vector' / 'text' (a CVAE conditioned on
Morpho-MNIST vectors or captions, as gan_mnist.py's), 'smoke' (28x28 grey
procedural shapes, seconds).
"""

from gensynth.configs import common
from gensynth.configs import vae_common


def get_config(arg=None):
  variants = common.parse_variants('vae_mnist', arg, ('idx', 'cond', 'vector',
                                                'text', 'smoke'))
  c = vae_common.base_config()
  c.batch_size = 128
  c.num_steps = 18_000  # more than the 60-minute NLL benchmark reaches
  c.log_every = 200
  c.checkpoint_every = 2000
  c.keep_checkpoints = 20  # Every checkpoint kept: the NLL-vs-time curve.
  c.image_every = 6000
  # Two sequential half-batches: the same update, faster per step on XLA:CPU
  # (`launch.benchmark --bench=vae_throughput`). On a GPU set
  # --config.micro_batches=1.
  c.micro_batches = 2
  c.data.update(source='tfds', name='mnist', download=True, binarize=True,
                value_range='zero_one')
  # Small conv trunk + a shallow PixelCNN head: the best NLL per CPU FLOP we
  # measured (BUILD_NOTES.md).
  c.model.update(latent_dim=32, widths=(16, 32, 64), likelihood='bernoulli',
                 blocks_per_level=0, ar_channels=16, ar_layers=2)
  c.optim.update(lr=2e-3, warmup_steps=500)
  c.eval.update(batch_size=100, final_samples=1000, chunk_size=50)
  if 'idx' in variants:
    c.data.update(source='idx', path='~/data/mnist', download=False)
  common.condition_variants(c, variants)
  if 'smoke' in variants:
    c.data.update(source='shapes', image_size=28, channels=1, download=False)
    vae_common.smoke(c)
    c.model.ar_channels = 4
  return c
