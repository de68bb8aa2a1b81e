r"""Side-by-side benchmarks (medians and ratios measured in one process).

  python -m launch.benchmark --bench=vae_throughput [--steps=30 --rounds=5]
  python -m launch.benchmark --bench=conv_layers
  python -m launch.benchmark --bench=pyramid_blend
  python -m launch.benchmark --bench=weighted_blend
  python -m launch.benchmark --bench=exposure_fusion --data_dir=../shared/datasets
  python -m launch.benchmark --bench=multifocus --data_dir=../shared/datasets
  python -m launch.benchmark --bench=panorama --data_dir=../shared/datasets

XLA:CPU pays for page faults on fresh large outputs; run the synthesis
benchmarks with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 as well (BUILD_NOTES.md).

Each benchmark prints a JSON record; BUILD_NOTES.md holds measured figures.
"""

import time

import numpy as np
from absl import app
from absl import flags

from launch import distributed

BENCHES = ('vae_throughput', 'conv_layers', 'pyramid_blend', 'weighted_blend',
           'exposure_fusion', 'multifocus', 'panorama')
flags.DEFINE_enum('bench', 'vae_throughput', BENCHES, 'Which benchmark to run.')
flags.DEFINE_string('data_dir', '../shared/datasets',
                    'Benchmark data (fusion/mef, fusion/lytro, ...).')
flags.DEFINE_string('out_dir', None, 'Where to save result images (PNG).')
flags.DEFINE_string('config', 'gensynth/configs/vae_mnist.py',
                    'Config file whose model is benchmarked.')
flags.DEFINE_integer('steps', 30, 'Timed steps per round.')
flags.DEFINE_integer('rounds', 5, 'Alternating rounds per framework.')
flags.DEFINE_integer('threads', 0, 'torch intra-op threads (0 = cores).')
flags.DEFINE_string('output', None, 'Also write the JSON record here.')
FLAGS = flags.FLAGS


def _load_config(path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def vae_throughput():
  """Train-step images/s of the VAE config: gensynth (JAX) vs PyTorch eager."""
  import functools  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from gensynth.steps import vae as vae_steps  # pylint: disable=g-import-not-at-top
  from gensynth.train import sharding  # pylint: disable=g-import-not-at-top
  from gensynth.train import vae as vae_train  # pylint: disable=g-import-not-at-top
  from launch import torch_models  # pylint: disable=g-import-not-at-top

  config = _load_config(FLAGS.config)
  b = config.batch_size
  shape = (28, 28, 1)
  mesh = sharding.make_mesh()
  _, state = vae_train.build(config, mesh, shape, 10, 10_000)
  step = jax.jit(functools.partial(vae_steps.train_step,
                                   **vae_train._step_kwargs(config)),  # pylint: disable=protected-access
                 donate_argnums=0)
  rng = np.random.default_rng(0)
  x = (rng.random((b,) + shape) < 0.3).astype(np.float32)
  batch = {'image': x, 'label': np.zeros(b, np.int32)}
  key = jax.random.key(0)

  torch.set_num_threads(FLAGS.threads or os.cpu_count())
  tmodel = torch_models.VAE(config.model)
  topt = torch.optim.Adam(tmodel.parameters(), lr=config.optim.lr)
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

  def jax_round(state):
    t = time.perf_counter()
    for _ in range(FLAGS.steps):
      state, m = step(state, batch, key)
    jax.block_until_ready(m)
    return state, time.perf_counter() - t

  def torch_round():
    t = time.perf_counter()
    for _ in range(FLAGS.steps):
      topt.zero_grad(set_to_none=True)
      loss = tmodel.loss(tx)
      loss.backward()
      topt.step()
    return time.perf_counter() - t

  state, _ = jax_round(state)  # compile + warm-up
  torch_round()
  jt, tt = [], []
  for _ in range(FLAGS.rounds):
    state, t = jax_round(state)
    jt.append(t)
    tt.append(torch_round())
  jax_ips = b * FLAGS.steps / np.median(jt)
  torch_ips = b * FLAGS.steps / np.median(tt)
  return {'bench': 'vae_throughput', 'config': FLAGS.config, 'batch': b,
          'jax_images_per_s': round(jax_ips, 1),
          'torch_images_per_s': round(torch_ips, 1),
          'ratio_jax_over_torch': round(jax_ips / torch_ips, 3),
          'jax_params': int(sum(p.size for p in jax.tree.leaves(state.params))),
          'torch_params': int(sum(p.numel() for p in tmodel.parameters())),
          'torch_threads': torch.get_num_threads(),
          'torch_version': torch.__version__, 'jax_version': jax.__version__}


def conv_layers():
  """Forward+backward of single convs (batch 128): XLA:CPU vs PyTorch."""
  import os  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(FLAGS.threads or os.cpu_count())
  cases = [('3x3 s1 16->16 @28', 28, 16, 16, 3, 1, 1),
           ('5x5 s1 1->16 @28', 28, 1, 16, 5, 1, 2),
           ('4x4 s2 16->32 @28', 28, 16, 32, 4, 2, 1),
           ('4x4 s2 32->64 @14', 14, 32, 64, 4, 2, 1),
           ('1x1 16->16 @28', 28, 16, 16, 1, 1, 0)]
  rows = []
  for name, hw, ci, co, k, s, p in cases:
    conv = lambda x, w, s=s, p=p: lax.conv_general_dilated(
        x, w, (s, s), ((p, p), (p, p)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    grad = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w)**2), (0, 1)))
    x, w = jnp.ones((128, hw, hw, ci)), jnp.ones((k, k, ci, co)) * 0.01
    tx = torch.ones(128, ci, hw, hw, requires_grad=True)
    tw = torch.full((co, ci, k, k), 0.01, requires_grad=True)
    tstep = lambda: (torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
                     **2).sum().backward()
    jax.block_until_ready(grad(x, w))
    tstep()
    times = {'jax': [], 'torch': []}
    for _ in range(FLAGS.steps):
      t = time.perf_counter()
      jax.block_until_ready(grad(x, w))
      times['jax'].append(time.perf_counter() - t)
      t = time.perf_counter()
      tstep()
      times['torch'].append(time.perf_counter() - t)
    rows.append({'conv': name,
                 **{f'{k}_ms': round(float(np.median(v)) * 1e3, 2)
                    for k, v in times.items()}})
  return {'bench': 'conv_layers', 'rows': rows}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from launch import bench_synth  # pylint: disable=g-import-not-at-top
  record = {'vae_throughput': vae_throughput, 'conv_layers': conv_layers,
            'pyramid_blend': bench_synth.pyramid_blend,
            'weighted_blend': bench_synth.weighted_blend,
            'exposure_fusion': bench_synth.exposure_fusion,
            'multifocus': bench_synth.multifocus,
            'panorama': bench_synth.panorama}[FLAGS.bench]()
  distributed.emit_json(record, FLAGS.output)


if __name__ == '__main__':
  app.run(main)
