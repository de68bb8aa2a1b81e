"""launch.runtime.configure_xla_cpu: the XLA:CPU flags the launch scripts set
before JAX starts."""

import json
import subprocess
import sys

from tests import helpers

_PROBE = r'''
import json, sys
from absl import app, flags
from launch import runtime
flags.FLAGS(['probe'] + sys.argv[1:])
try:
  xla_flags = runtime.configure_xla_cpu()
except app.UsageError as e:
  print(json.dumps({'usage_error': str(e)})); sys.exit()
import jax, jax.numpy as jnp
x, w = jnp.ones((128, 28, 28, 16)), jnp.ones((4, 4, 16, 32))
conv = lambda x, w: jax.lax.conv_general_dilated(
    x, w, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
hlo = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), (0, 1))).lower(
    x, w).compile().as_text()
print(json.dumps({'xla_flags': xla_flags, 'ynn': 'ynn_fusion' in hlo}))
'''


def _probe(*flags, xla_flags=None):
  env = helpers.env()
  env.pop('XLA_FLAGS', None)
  if xla_flags is not None:
    env['XLA_FLAGS'] = xla_flags
  proc = subprocess.run([sys.executable, '-c', _PROBE, *flags], cwd=helpers.REPO,
                        env=env, capture_output=True, text=True, timeout=120,
                        check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_launch_default_turns_ynn_fusions_off():
  out = _probe()
  assert out['xla_flags'] == '--xla_cpu_experimental_ynn_fusion_type='
  assert not out['ynn']


def test_default_keeps_jaxlib_choice_and_user_flags_win():
  # jaxlib 0.10 hands this conv to YNNPACK on its own; 'default' keeps that.
  assert _probe('--xla_cpu_ynn_fusion_type=default')['ynn']
  out = _probe(xla_flags='--xla_cpu_experimental_ynn_fusion_type='
               'individual_convolution')
  assert out['xla_flags'] == ('--xla_cpu_experimental_ynn_fusion_type='
                              'individual_convolution')
  assert out['ynn']
  out = _probe('--xla_cpu_ynn_fusion_type=dot,conv')
  assert "['conv'] unknown" in out['usage_error']
