"""Fields every VAE config carries (a locked ConfigDict rejects unknown ones)."""

import ml_collections

from gensynth.configs import common


def base_config():
  c = ml_collections.ConfigDict()
  c.trainer = 'vae'
  c.seed = 0
  c.batch_size = 128
  c.num_steps = 10_000
  c.log_every = 100
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.image_every = 2000
  c.eval_every = 0  # 0: only at the end.
  c.skip_nonfinite = False  # True: skip NaN/Inf steps instead of stopping
  # >1: accumulate each step's gradient over this many sequential
  # micro-batches (same update; see gensynth.steps.vae.batch_gradients).
  c.micro_batches = 1

  c.data = common.data_config()
  c.model = ml_collections.ConfigDict(dict(
      latent_dim=32, widths=(32, 64, 128), likelihood='bernoulli',
      conditional=False, blocks_per_level=1,
      ar_channels=0, ar_layers=2,  # ar_channels > 0: autoregressive head
      act='silu',  # a flax.linen activation name, or identity
      # Vector/text conditions (config.data.condition): embedding width and
      # the text encoder's width, layers and heads.
      embed_dim=32, text_width=64, text_layers=2, text_heads=4,
      conv_impl='auto'))  # auto | xla | fast (gensynth.models.layers)
  c.loss = ml_collections.ConfigDict(dict(
      beta=1.0, objective='elbo', num_samples=1, gaussian_scale=0.1,
      # Share of examples trained without their vector/text condition (the
      # null condition, for classifier-free guidance when sampling).
      cond_dropout=0.0))
  c.optim = ml_collections.ConfigDict(dict(
      lr=1e-3, warmup_steps=500, schedule='cosine', final_lr_fraction=0.05,
      b1=0.9, b2=0.999, weight_decay=0.0, grad_clip=100.0))
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=100, train_samples=10, train_examples=1000,
      final_samples=100, chunk_size=50, final_examples=0))
  return c


def smoke(c, *, steps=6):
  """A few steps on tiny data and a tiny model: seconds on one CPU core."""
  common.smoke_schedule(c, steps, num_test=16)
  c.eval_every = 0
  c.model.widths = (8, 16)
  c.model.latent_dim = 4
  c.model.blocks_per_level = 0
  c.optim.warmup_steps = 1
  c.eval.update(batch_size=8, final_samples=4, chunk_size=2, final_examples=16)
  return c
