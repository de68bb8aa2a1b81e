"""Fields every learned-fusion config carries (gensynth.train.fusion)."""

import ml_collections

from gensynth.configs import common


def base_config():
  c = ml_collections.ConfigDict()
  c.trainer = 'fusion'
  c.seed = 0
  c.batch_size = 8
  c.num_steps = 6000
  c.log_every = 100
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  c.eval_every = 1000  # validation quality, learned and prior-only
  c.skip_nonfinite = False
  c.data = ml_collections.ConfigDict(dict(
      task='exposure',  # exposure | multifocus
      # Photographs for synthetic sets: 'skimage' (scikit-image's bundled
      # photos) and/or folders, comma-separated.
      photos='skimage',
      # exposure: a folder of real stacks (one sub-folder per scene); the
      # scenes used are `scenes` ('' = all) minus `exclude_scenes` minus the
      # held-out fold.
      stacks_dir='', scenes='', exclude_scenes='',
      # fold >= 0: sorted scenes [fold*3, fold*3 + 3) are held out (never
      # trained on); -1: none held out.
      fold=-1, fold_size=3,
      real_fraction=0.5,  # share of examples from real stacks (if any)
      crop=128,  # training crops (pixels a side)
      ks=(2, 3, 4),  # sources per example, drawn per step
      eval_examples=16, eval_seed=10_000,  # validation set (not trained on)
      # multifocus: blur of the out-of-focus regions, gaussian | disc (a
      # lens's circle of confusion) | mixed (either, per source)
      defocus_blur='gaussian',
      # multifocus: True composites the regions as objects at random depths
      # (a nearer blurred object spreads over the in-focus one behind it);
      # False blends each source's sharp region into its blurred copy
      defocus_layers=False,
      # multifocus: fields (regions of random shape) | segments (unions of
      # the photo's segments: boundaries along its edges, as objects' are)
      defocus_regions='fields',
      # () lossless sources; (lo, hi): each example's sources written as
      # JPEGs of a quality drawn from [lo, hi] and read back (the target
      # stays lossless), as camera pairs are
      source_jpeg=(),
  ))
  c.model = ml_collections.ConfigDict(dict(
      widths=(16, 32), prior='mertens', blend='pyramid', low_res=32,
      guide_radius=1, guide_eps=1e-2, levels=0,  # levels 0: full depth
      # 0: weights at full resolution; 1: at half resolution, blended in
      # one pass (see gensynth.models.fusion.FusionNet)
      weights_level=0,
      # None: the working size's halvings L from the image size (short side
      # about low_res); an int: always L halvings (the training crops'
      # scale at any image size; see gensynth.models.fusion.FusionNet)
      down_levels=None,
      # None: the prior's exponent is learned (exp(p log q + correction));
      # a number fixes it (0.5: a square root per pixel, no log)
      prior_exponent=None))
  c.loss = ml_collections.ConfigDict(dict(
      kind='mef_ssim',  # mef_ssim | ssim_grad
      smooth_weight=0.01, grad_weight=0.0,
      # > 0: penalise the entropy of the per-pixel weights over the sources
      # (divided by log K), pushing each pixel towards one source
      decisive_weight=0.0,
      # > 0: add this times 1 - Q^AB/F of the fused image against its
      # sources (edge preservation, the multi-focus benchmark's score)
      qabf_weight=0.0))
  c.optim = ml_collections.ConfigDict(dict(
      lr=1e-3, warmup_steps=200, schedule='cosine', final_lr_fraction=0.05,
      b1=0.9, b2=0.999, weight_decay=0.0, grad_clip=1.0))
  return c


def smoke(c, *, steps=4):
  """A few steps on small crops: seconds of compute (plus compilation)."""
  c.batch_size = 2
  c.num_steps = steps
  c.log_every = 1
  c.checkpoint_every = 2
  c.eval_every = 0
  c.data.update(crop=64, ks=(2,), eval_examples=2, real_fraction=0.5)
  c.model.widths = (8, 8)
  c.optim.warmup_steps = 1
  return c


def variants(name, arg, extra=()):
  return common.parse_variants(name, arg, ('smoke',) + tuple(extra))
