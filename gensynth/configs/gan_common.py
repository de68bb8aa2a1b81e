"""Fields every GAN config carries (a locked ConfigDict rejects unknown ones)."""

import ml_collections

from gensynth.configs import common


def _optim(lr):
  # Constant-rate Adam with beta1 = 0.5, the DCGAN setting.
  return ml_collections.ConfigDict(dict(
      lr=lr, warmup_steps=0, schedule='constant', final_lr_fraction=1.0,
      b1=0.5, b2=0.999, weight_decay=0.0, grad_clip=0.0))


def base_config():
  c = ml_collections.ConfigDict()
  c.trainer = 'gan'
  c.seed = 0
  c.batch_size = 64  # real images per D step (x loss.d_steps per step)
  c.num_steps = 20_000
  c.log_every = 100
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.image_every = 1000
  c.skip_nonfinite = False  # True: skip NaN/Inf steps instead of stopping
  c.data = common.data_config()
  c.data.value_range = 'minus_one_one'  # the generator ends in tanh
  c.model = ml_collections.ConfigDict(dict(
      latent_dim=64, g_widths=(128, 64), d_widths=(64, 128), conditional=False,
      embed_dim=32, g_norm='group', spectral_norm=False,
      g_upsample='transpose',  # transpose | nearest (2x nearest + 3x3 conv)
      d_mbstd_group=0,  # minibatch-std group size in D; 0 = off
      d_head=0,  # width of a hidden layer before D's logit; 0 = linear head
      g_latent_film=False,  # True: z also feeds every norm's FiLM (skip-z)
      # Text encoder (config.data.condition='text'): width, layers, heads.
      text_width=64, text_layers=2, text_heads=4,
      conv_impl='auto'))  # auto | xla | fast (gensynth.models.layers)
  c.loss = ml_collections.ConfigDict(dict(
      kind='ns',  # ns | hinge | wgan
      d_steps=1, gp_weight=0.0, r1_weight=0.0, r1_every=16,
      # True: one fake batch per step serves D's and then G's update (one G
      # forward pass instead of two; needs d_steps=1).
      shared_fakes=False,
      # > 0: matching-aware D (real images with another example's condition
      # count as fakes, weighted by this); needs a conditional GAN.
      mismatch_weight=0.0,
      # > 0: MSGAN's mode-seeking term in G's loss, this weight (diversity
      # among samples of one condition); needs an even batch.
      mode_seeking_weight=0.0,
      # > 0: an image-condition contrastive term (InfoNCE on D's projection,
      # XMC-GAN) in D's loss on real images and G's on fakes, this weight;
      # needs a conditional GAN.
      contrastive_weight=0.0))
  c.ema = ml_collections.ConfigDict(dict(decay=0.999, start=1000))
  c.g_optim = _optim(2e-4)
  c.d_optim = _optim(2e-4)
  c.eval = ml_collections.ConfigDict(dict(
      classifier='',  # workdir of a gensynth classifier: metrics at the end
      num_samples=10_000, batch_size=500, kid_subsets=100,
      kid_subset_size=1000, pr_k=3))
  return c


def smoke(c, *, steps=6):
  """A few steps on tiny data and a tiny model: seconds on one CPU core."""
  common.smoke_schedule(c, steps, num_test=64)
  c.model.update(latent_dim=8, g_widths=tuple(8 for _ in c.model.g_widths),
                 d_widths=tuple(8 for _ in c.model.d_widths), embed_dim=4)
  if c.model.d_head:
    c.model.d_head = 8
  c.ema.start = 2
  c.eval.update(num_samples=64, batch_size=16, kid_subsets=4,
                kid_subset_size=8)
  return c

