"""XLA compile time of the public synthesis ops and image metrics at a new
shape (no persistent cache), next to the time of one call once compiled.

Also the first eager call of each op at a new shape (what a user who calls
the op without their own jax.jit waits for: gensynth.synth.compiled) and an
eager call once that shape has been seen."""

import functools
import time

import numpy as np
from absl import flags

FLAGS = flags.FLAGS


def _ops(rng, hw):
  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp
  from gensynth.metrics import image as metrics
  from gensynth.synth import blend
  from gensynth.synth import fusion
  from gensynth.synth import keypoints
  from gensynth.synth import learned
  from gensynth.synth import warp
  from gensynth.configs import fusion_exposure
  from gensynth.models import fusion as fusion_model
  import jax
  # pylint: enable=g-import-not-at-top
  img = lambda: jnp.asarray(rng.uniform(size=hw + (3,)), jnp.float32)
  a, b, f = img(), img(), img()
  m = jnp.asarray(rng.uniform(size=hw), jnp.float32)
  stack3 = jnp.stack([img(), img(), img()])
  h = jnp.asarray(np.eye(3) + rng.normal(0, 1e-4, (3, 3)), jnp.float32)
  # The exposure recipe's network, untrained (compile time does not depend
  # on the parameter values).
  net = fusion_model.from_config(fusion_exposure.get_config().model)
  params = jax.jit(net.init)(jax.random.key(0),
                             jnp.zeros((1, 2, 16, 16, 3)))['params']
  return {
      'blend.weighted_blend': (lambda x, y: blend.weighted_blend(
          [x, y], jnp.array([0.5, 0.5])), (a, b)),
      'blend.multiband_blend (6 levels)': (
          lambda x, y, k: blend.multiband_blend(
              [x, y], blend.two_image_masks(k), levels=6), (a, b, m)),
      'blend.poisson_blend': (functools.partial(blend.poisson_blend,
                                                maxiter=200), (a, b, m)),
      'fusion.exposure_fusion (K=3)': (fusion.exposure_fusion, (stack3,)),
      'learned.learned_fusion (K=3)': (
          functools.partial(learned.learned_fusion, model=net),
          (params, stack3)),
      'fusion.multifocus_fusion (K=2)': (
          lambda x, y: fusion.multifocus_fusion([x, y]), (a, b)),
      'warp.warp_perspective': (lambda x, hh: warp.warp_perspective(
          x, hh, hw), (a, h)),
      'keypoints.detect_and_describe': (
          lambda x: keypoints.detect_and_describe(x, num_keypoints=500),
          (a,)),
      'metrics.ssim': (metrics.ssim, (a, b)),
      'metrics.mef_ssim (K=3)': (metrics.mef_ssim, (stack3, f)),
      'metrics.qabf': (metrics.qabf, (a, b, f)),
      'metrics.mutual_information': (metrics.mutual_information, (a, b, f)),
  }


def compile_latency():
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_compilation_cache', False)
  rng = np.random.default_rng(0)
  rows = []
  for hw in ((512, 512), (480, 640)):
    for name, (fn, args) in _ops(rng, hw).items():
      t = time.perf_counter()
      jax.block_until_ready(fn(*args))
      eager_first_s = time.perf_counter() - t
      t = time.perf_counter()
      jax.block_until_ready(fn(*args))
      eager_again_ms = (time.perf_counter() - t) * 1e3
      jitted = jax.jit(fn)
      t = time.perf_counter()
      compiled = jitted.lower(*args).compile()
      compile_s = time.perf_counter() - t
      jax.block_until_ready(compiled(*args))
      runs = []
      for _ in range(max(FLAGS.rounds, 1)):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t)
      rows.append({'op': name, 'hw': list(hw),
                   'compile_s': round(compile_s, 3),
                   'eager_first_s': round(eager_first_s, 3),
                   'eager_again_ms': round(eager_again_ms, 2),
                   'run_ms': round(float(np.median(runs)) * 1e3, 2)})
  return {'bench': 'compile_latency', 'jax_version': jax.__version__,
          'rows': rows}
