r"""Side-by-side benchmarks (medians and ratios measured in one process).

The benchmarks live in launch/bench/; this script defines their flags and
runs the one --bench names.

  python -m launch.benchmark --bench=vae_throughput [--steps=30 --rounds=5]
  python -m launch.benchmark --bench=vae_layers [--act=identity]
  python -m launch.benchmark --bench=gan_throughput \
      --config=gensynth/configs/gan_mnist.py:cond
  python -m launch.benchmark --bench=layer_impl
  python -m launch.benchmark --bench=condition_cost
  # on a GPU machine, both frameworks on the GPU:
  python -m launch.benchmark --bench=vae_throughput --torch_device=cuda
  python -m launch.benchmark --bench=conv_layers
  python -m launch.benchmark --bench=checkpoint_rss --steps=400
  python -m launch.benchmark --bench=pyramid_blend
  python -m launch.benchmark --bench=weighted_blend
  python -m launch.benchmark --bench=exposure_fusion --data_dir=../shared/datasets
  python -m launch.benchmark --bench=multifocus --data_dir=../shared/datasets
  python -m launch.benchmark --bench=panorama --data_dir=../shared/datasets
  python -m launch.benchmark --bench=cli_wall_time --rounds=5 \
      --data_dir=../shared/datasets
  python -m launch.benchmark --bench=compile_latency
  python -m launch.benchmark --bench=learned_exposure \
      --checkpoints=runs/fusion_exposure_fold0,runs/fusion_exposure_fold1
  python -m launch.benchmark --bench=learned_multifocus \
      --checkpoints=runs/fusion_multifocus
  python -m launch.benchmark --bench=learned_multifocus_validation \
      --checkpoints=runs/fusion_multifocus --down_levels=2,4
  python -m launch.benchmark --bench=mef_ssim_numpy --rounds=5

The record names the glibc tunables in effect: the figures under "Synthesis
vs OpenCV" taken with huge-page malloc came from
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m launch.benchmark ...`.

Each benchmark prints a JSON record; BUILD_NOTES.md holds measured figures.
"""

import importlib
import os
import platform

from absl import app
from absl import flags

from launch import distributed
from launch import runtime

# --bench name: (module under launch/bench/, function there).
BENCHES = {
    'vae_throughput': ('train_steps', 'vae_throughput'),
    'vae_layers': ('train_steps', 'vae_layers'),
    'gan_throughput': ('train_steps', 'gan_throughput'),
    'layer_impl': ('train_steps', 'layer_impl'),
    'condition_cost': ('train_steps', 'condition_cost'),
    'conv_layers': ('train_steps', 'conv_layers'),
    'checkpoint_rss': ('checkpoint', 'checkpoint_rss'),
    'pyramid_blend': ('synth', 'pyramid_blend'),
    'weighted_blend': ('synth', 'weighted_blend'),
    'exposure_fusion': ('synth', 'exposure_fusion'),
    'multifocus': ('synth', 'multifocus'),
    'panorama': ('synth', 'panorama'),
    'cli_wall_time': ('cli', 'cli_wall_time'),
    'compile_latency': ('compile_latency', 'compile_latency'),
    'learned_exposure': ('learned_fusion', 'learned_exposure'),
    'learned_multifocus': ('learned_fusion', 'learned_multifocus'),
    'learned_multifocus_validation': ('learned_fusion',
                                      'learned_multifocus_validation'),
    'mef_ssim_numpy': ('learned_fusion', 'mef_ssim_numpy'),
}
SYNTHESIS_MODULES = ('synth', 'learned_fusion')
flags.DEFINE_enum('bench', 'vae_throughput', list(BENCHES),
                  'Which benchmark to run.')
flags.DEFINE_string('data_dir', '../shared/datasets',
                    'Benchmark data (fusion/mef, fusion/lytro, ...).')
flags.DEFINE_string('out_dir', None, 'Where to save result images (PNG).')
flags.DEFINE_string('config', 'gensynth/configs/vae_mnist.py',
                    'Config file whose model is benchmarked.')
flags.DEFINE_integer('steps', 30, 'Timed steps per round.')
flags.DEFINE_integer('rounds', 5, 'Alternating rounds per framework.')
flags.DEFINE_integer('threads', 0, 'torch intra-op threads (0 = cores).')
flags.DEFINE_enum('torch_device', 'cpu', ('cpu', 'cuda'),
                  'Where the PyTorch twins of vae_throughput and '
                  'gan_throughput run (JAX uses its default backend; on a GPU '
                  'machine run both there: --torch_device=cuda).')
flags.DEFINE_string('act', '', 'vae_throughput and vae_layers: replaces '
                    'config.model.act in gensynth and in the PyTorch twin '
                    '(e.g. identity: what the activations cost); empty: the '
                    "config's own.")
flags.DEFINE_list('checkpoints', [], 'learned_exposure/learned_multifocus'
                  '(_validation): workdirs of trained fusion networks.')
flags.DEFINE_list('down_levels', [], 'learned_multifocus_validation: working '
                  'scales 2^-L to read each network at (empty: its config).')
flags.DEFINE_list('regions', ['fields'], 'learned_multifocus_validation: '
                  'the sets\' regions, a list of fields (random shapes) and '
                  'segments (unions of the photo\'s segments).')
flags.DEFINE_integer('sets', 64, 'learned_multifocus_validation: two-source '
                     'sets per kind.')
flags.DEFINE_string('output', None, 'Also write the JSON record here.')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  module, name = BENCHES[FLAGS.bench]
  # --reuse_freed_memory applies to synthesis ops in this process, as to the
  # synthesis CLIs; train steps run as the trainer runs them.
  reused = (module in SYNTHESIS_MODULES and FLAGS.reuse_freed_memory and
            runtime.reuse_freed_memory())
  xla_flags = runtime.configure_xla_cpu()
  record = getattr(importlib.import_module(f'launch.bench.{module}'), name)()
  import jax  # pylint: disable=g-import-not-at-top
  record.setdefault('jax_version', jax.__version__)
  record['python_version'] = platform.python_version()
  record['xla_flags'] = xla_flags
  record['glibc_tunables'] = os.environ.get('GLIBC_TUNABLES', '')
  record['reuse_freed_memory'] = bool(reused)
  distributed.emit_json(record, FLAGS.output)


if __name__ == '__main__':
  app.run(main)
