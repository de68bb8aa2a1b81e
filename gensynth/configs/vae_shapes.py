"""Conv VAE on gensynth's procedural shapes (the embedded default data).

32x32 RGB in [-1, 1] under a discretised logistic likelihood. The default
trains for a few minutes on 2 CPU cores; 'smoke' runs in seconds. Condition
variants (gensynth.configs.common.condition_variants): 'cond' (class ids),
'text' (captions), 'vector' (attribute vectors), 'attributes' (class ids on
the attribute shapes), and 'heldout' (colour x kind pairs kept out of
training).
"""

from gensynth.configs import common
from gensynth.configs import vae_common


def get_config(arg=None):
  variants = common.parse_variants(
      'vae_shapes', arg, ('cond', 'text', 'vector', 'attributes', 'heldout',
                      'smoke'))
  c = vae_common.base_config()
  c.batch_size = 64
  c.num_steps = 1500
  c.log_every = 50
  c.checkpoint_every = 500
  c.image_every = 500
  c.data.update(source='shapes', image_size=32, channels=3,
                value_range='minus_one_one', num_train=20_000, num_test=1000)
  c.model.update(latent_dim=16, widths=(32, 64, 64), likelihood='logistic',
                 blocks_per_level=0)
  c.optim.update(lr=2e-3, warmup_steps=100)
  c.eval.update(batch_size=100, final_samples=20, chunk_size=10,
                final_examples=500)
  common.condition_variants(c, variants)
  if 'smoke' in variants:
    vae_common.smoke(c)
  return c
