"""Learned multi-focus fusion (gensynth.models.fusion, prior 'focus').

Trains on synthetic defocus sets (complementary regions with irregular
boundaries, Gaussian blur of random radius) made from photographs: by
default scikit-image's bundled ones; add folders with
--config.data.photos=skimage,DIR. Loss: 1 - SSIM to the sharp photo plus an
L1 term on Sobel gradients. The network works at 1/4 of the image at any
size (model.down_levels = 2, its training crops' scale). Weights are
applied per pixel (blend 'spatial'), so in-focus pixels pass through
unchanged. Variants: 'smoke', and 'bench'
(the benchmark recipe: adds the panorama photos of the benchmark data,
which holds no multi-focus set; the Lytro pairs are for evaluation only),
'decisive' (disc or Gaussian defocus per source, and a weight-entropy loss
term that pushes each pixel towards one source), 'layered' (the regions
composited as objects at random depths, so that a nearer out-of-focus
object spreads its blurred edge over the in-focus one behind it, as in
real multi-focus pairs), 'jpeg' (each set's sources written as JPEGs of a
random quality 60-95 and read back, as camera pairs are; the target stays
the lossless photo), 'segments' (each region a union of the photo's own
segments, so focus boundaries follow its edges, as they follow objects'
outlines in real scenes).

  python -m launch.train --config=gensynth/configs/fusion_multifocus.py:bench \
      --workdir=runs/fusion_multifocus
"""

from gensynth.configs import fusion_common


def get_config(arg=None):
  variants = fusion_common.variants('fusion_multifocus', arg,
                                     ('bench', 'decisive', 'layered', 'jpeg',
                                      'segments'))
  c = fusion_common.base_config()
  c.data.task = 'multifocus'
  c.data.ks = (2, 3)
  c.model.update(prior='focus', blend='spatial', guide_eps=1e-3)
  # The network works at 1/4 of any image: the scale of its 128-px training
  # crops (num_down(128, low_res=32) = 2). Defocus blur is a few pixels at
  # any image size, so a 520-px pair read at 1/16 (what low_res alone would
  # give) hides from the network the blur it learned to read (BUILD_NOTES.md,
  # "A fixed working scale").
  c.model.down_levels = 2
  c.loss.update(kind='ssim_grad', smooth_weight=0.0, grad_weight=0.05)
  if 'bench' in variants:
    c.data.photos = ('skimage,../shared/datasets/panorama,'
                     '../shared/datasets/panorama/arches')
  if 'decisive' in variants:
    # Disc (lens) or Gaussian blur per source, and a loss term that pushes
    # each pixel towards one source (BUILD_NOTES.md, "Learned fusion").
    c.data.defocus_blur = 'mixed'
    c.loss.decisive_weight = 0.01
  if 'layered' in variants:
    # Depth layers with defocus spread (gensynth.data.stacks.simulate_defocus).
    c.data.defocus_layers = True
  if 'segments' in variants:
    # Regions made of the photo's own segments: boundaries along its edges.
    c.data.defocus_regions = 'segments'
  if 'jpeg' in variants:
    # Sources as camera JPEGs of quality 60-95 (the target stays lossless).
    c.data.source_jpeg = (60, 95)
  if 'smoke' in variants:
    fusion_common.smoke(c)
  return c
