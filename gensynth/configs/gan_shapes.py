"""DCGAN on gensynth's procedural shapes (the embedded default data).

32x32 RGB; trains for a few minutes on 2 CPU cores. Variants: condition on
'cond' (class ids), 'text' (captions), 'vector' (attribute vectors) or
'attributes' (class ids on the attribute shapes); 'heldout' (colour x kind
pairs kept out of training); 'matching' (a matching-aware discriminator:
real images with another example's condition count as fakes);
'contrastive' (an image-caption contrastive term in D's and G's losses);
'diverse' (MSGAN's mode-seeking term: samples of one condition pushed
apart); 'head' (a hidden layer in D's head, so D can tell one shape from
two); 'skipz' (z feeds every normalisation's FiLM, BigGAN's skip-z);
'smoke' (seconds). The conditioned variants on
the attribute shapes ('text', 'vector', 'attributes') train with the
recipe of gan_mnist's FID benchmark (nearest upsampling, minibatch std,
hinge loss with lazy R1, Adam b1=0, one shared fake batch per step): the
plain DCGAN recipe collapsed on them (BUILD_NOTES.md,
"Text- and vector-conditioned generation").
"""

from gensynth.configs import common
from gensynth.configs import gan_common


def get_config(arg=None):
  variants = common.parse_variants(
      'gan_shapes', arg, ('cond', 'text', 'vector', 'attributes', 'heldout',
                      'matching', 'contrastive', 'diverse', 'head', 'skipz',
                      'smoke'))
  c = gan_common.base_config()
  c.num_steps = 3000
  c.checkpoint_every = 500
  c.image_every = 500
  c.data.update(source='shapes', image_size=32, channels=3, num_train=20_000,
                num_test=1000)
  c.model.update(latent_dim=64, g_widths=(128, 64, 32), d_widths=(32, 64, 128))
  c.ema.start = 500
  common.condition_variants(c, variants)
  if variants & {'text', 'vector', 'attributes'}:
    c.model.update(g_upsample='nearest', d_mbstd_group=4)
    c.loss.update(kind='hinge', r1_weight=1.0, r1_every=16, shared_fakes=True)
    for opt in (c.g_optim, c.d_optim):
      opt.update(lr=4e-4, b1=0.0, b2=0.99)
  if 'matching' in variants:  # matching-aware D (steps.gan._d_update)
    c.loss.mismatch_weight = 1.0
  if 'contrastive' in variants:  # XMC-GAN's term (steps.gan); 0.3 chosen
    # over XMC-GAN's 1 on the validation split (BUILD_NOTES.md)
    c.loss.contrastive_weight = 0.3
  if 'diverse' in variants:  # MSGAN's mode-seeking term (steps.gan)
    c.loss.mode_seeking_weight = 1.0
  if 'head' in variants:  # models.gan.Discriminator.head
    c.model.d_head = 256
  if 'skipz' in variants:  # models.gan.Generator.latent_film
    c.model.g_latent_film = True
  if 'smoke' in variants:
    gan_common.smoke(c)
  return c
