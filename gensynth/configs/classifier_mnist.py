"""The feature classifier behind gensynth's FID/KID/precision/recall on MNIST.

Variants: '' (TFDS mnist), 'idx' (four MNIST IDX files in --config.data.path),
'shapes' (28x28 grey procedural shapes, for the gan_shapes/gan_mnist smoke
metrics), 'attribute_shapes' (the 32x32 RGB attribute shapes' six kinds:
the features behind FID of the text- and vector-conditioned shapes GANs),
'smoke' (a few steps on tiny shapes data, seconds).
"""

import ml_collections

from gensynth.configs import common


def get_config(arg=None):
  variants = common.parse_variants('classifier_mnist', arg,
                                   ('idx', 'shapes', 'attribute_shapes',
                                    'smoke'))
  c = ml_collections.ConfigDict()
  c.trainer = 'classifier'
  c.seed = 0
  c.batch_size = 128
  c.num_steps = 3000  # ~6 epochs of MNIST.
  c.log_every = 100
  c.checkpoint_every = 1000
  c.keep_checkpoints = 2
  c.eval_every = 1000
  c.data = ml_collections.ConfigDict(dict(
      source='tfds', name='mnist', path='', data_dir='', download=True,
      train_split='train', test_split='test', image_key='image',
      label_key='label', holdout_fraction=0.1, holdout_seed=0, image_size=0,
      channels=1, num_train=20_000, num_test=2_000, shapes_seed=0,
      num_classes=0, value_range='minus_one_one',
      augment_shift=2))  # random translations of up to 2 pixels
  c.model = ml_collections.ConfigDict(dict(
      widths=(32, 64), feature_dim=128,
      conv_impl='auto'))  # auto | xla | fast (gensynth.models.layers)
  c.loss = ml_collections.ConfigDict(dict(label_smoothing=0.0))
  c.optim = ml_collections.ConfigDict(dict(
      lr=2e-3, warmup_steps=100, schedule='cosine', final_lr_fraction=0.01,
      b1=0.9, b2=0.999, weight_decay=0.0, grad_clip=0.0))
  c.eval = ml_collections.ConfigDict(dict(batch_size=500))
  if 'idx' in variants:
    c.data.update(source='idx', path='~/data/mnist', download=False)
  if 'shapes' in variants or 'smoke' in variants:
    c.data.update(source='shapes', image_size=28, channels=1, download=False,
                  num_train=6000, num_test=1000)
    c.num_steps = 600
    c.eval_every = 300
    c.checkpoint_every = 300
  if 'attribute_shapes' in variants:
    c.data.update(source='shapes', image_size=32, channels=3, download=False,
                  num_train=20_000, num_test=1000, shapes_attributes=True)
    c.num_steps = 1500
    c.eval_every = 500
    c.checkpoint_every = 500
  if 'smoke' in variants:
    c.data.update(num_train=64, num_test=32)
    c.update(batch_size=16, num_steps=4, log_every=2, checkpoint_every=2,
             eval_every=0)
    c.model.update(widths=(4, 8), feature_dim=8)
    c.optim.warmup_steps = 1
    c.eval.batch_size = 16
  return c
