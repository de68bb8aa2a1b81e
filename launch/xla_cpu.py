"""XLA:CPU settings the launch scripts apply before JAX starts its backend.

jaxlib 0.10 hands many XLA:CPU convolutions and dots to the YNNPACK library
by default. For gensynth's models that is slower than XLA's own kernels (GAN
train step 0.81-0.97x PyTorch with it, 1.02-1.13x without; BUILD_NOTES.md), so
the launch scripts turn it off unless told otherwise. Only XLA:CPU reads the
flag; GPU and TPU runs are unaffected.
"""

import os

from absl import app
from absl import flags
from absl import logging

_YNN = 'xla_cpu_experimental_ynn_fusion_type'
_TYPES = ('dot', 'eltwise', 'reduce', 'individual_dot',
          'individual_convolution')

flags.DEFINE_string(
    'xla_cpu_ynn_fusion_type', '',
    "Ops XLA:CPU hands to YNNPACK: '' (none, gensynth's default: faster for "
    "its models), 'default' (jaxlib's own choice), or a comma-separated list "
    'of dot, eltwise, reduce, individual_dot, individual_convolution. An '
    f'explicit --{_YNN} in XLA_FLAGS wins.')

FLAGS = flags.FLAGS


def configure():
  """Adds --xla_cpu_experimental_ynn_fusion_type to XLA_FLAGS.

  Call before the first JAX computation: XLA reads XLA_FLAGS once, when the
  backend starts. Returns the XLA_FLAGS value now in effect.
  """
  current = os.environ.get('XLA_FLAGS', '')
  choice = FLAGS.xla_cpu_ynn_fusion_type
  if choice == 'default' or _YNN in current:
    return current
  unknown = [t for t in choice.split(',') if t and t not in _TYPES]
  if unknown:
    raise app.UsageError(f'--xla_cpu_ynn_fusion_type: {unknown} unknown; '
                         f"expected '', 'default' or a comma-separated list "
                         f'of {_TYPES}.')
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    logging.warning('JAX backend already started; --xla_cpu_ynn_fusion_type='
                    '%r not applied.', choice)
    return current
  os.environ['XLA_FLAGS'] = f'{current} --{_YNN}={choice}'.strip()
  return os.environ['XLA_FLAGS']
