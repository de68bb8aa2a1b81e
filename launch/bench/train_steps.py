"""Train-step benchmarks for launch.benchmark: gensynth's jitted steps next to
identical PyTorch models (launch.bench.torch_models), and gensynth's two
convolution implementations against each other (`config.model.conv_impl`).

Every timing is a median over alternating rounds in one process.
"""

import time

import numpy as np
from absl import app
from absl import flags

FLAGS = flags.FLAGS


def _load_config(path):
  """Config from 'file.py' or 'file.py:variant'."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path, _, arg = path.partition(':')
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg or None)


def torch_device():
  """The PyTorch device of the twins, checked against what this host has."""
  import torch  # pylint: disable=g-import-not-at-top
  if FLAGS.torch_device == 'cuda' and not torch.cuda.is_available():
    raise app.UsageError('--torch_device=cuda, but this PyTorch build sees no '
                         'CUDA device; use --torch_device=cpu.')
  return torch.device(FLAGS.torch_device)


def _side_by_side(jax_step, state, torch_step, images_per_step):
  """Alternating timed rounds of FLAGS.steps steps each, after one warm-up
  round apiece: (final JAX state, JAX images/s, PyTorch images/s), medians.
  Each round ends when its device work has finished (block_until_ready for
  JAX, torch.cuda.synchronize for PyTorch on a GPU)."""
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  sync = (torch.cuda.synchronize if FLAGS.torch_device == 'cuda'
          else lambda: None)

  def jax_round(state):
    t = time.perf_counter()
    for _ in range(FLAGS.steps):
      state, m = jax_step(state)
    jax.block_until_ready(m)
    return state, time.perf_counter() - t

  def torch_round():
    t = time.perf_counter()
    for _ in range(FLAGS.steps):
      torch_step()
    sync()
    return time.perf_counter() - t

  state, _ = jax_round(state)  # compile + warm-up
  torch_round()
  jt, tt = [], []
  for _ in range(FLAGS.rounds):
    state, t = jax_round(state)
    jt.append(t)
    tt.append(torch_round())
  ips = lambda times: images_per_step * FLAGS.steps / float(np.median(times))
  return state, ips(jt), ips(tt)


def _vae_pair():
  """The VAE config's jitted train step (gensynth) and its PyTorch twin, each
  with one fixed batch on its device: (config, model, jax_step, state,
  torch_model, torch_step, torch_images)."""
  import functools  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from gensynth.steps import vae as vae_steps  # pylint: disable=g-import-not-at-top
  from gensynth.train import sharding  # pylint: disable=g-import-not-at-top
  from gensynth.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from gensynth.train import vae as vae_train  # pylint: disable=g-import-not-at-top
  from launch.bench import torch_models  # pylint: disable=g-import-not-at-top

  config = _load_config(FLAGS.config)
  if FLAGS.act:
    config.model.act = FLAGS.act
  b = config.batch_size
  shape = (28, 28, 1)
  mesh = sharding.make_mesh()
  model, state = state_lib.vae(config, mesh, shape, 10, 10_000)
  step = jax.jit(functools.partial(vae_steps.train_step,
                                   **vae_train.step_kwargs(config)),
                 donate_argnums=0)
  rng = np.random.default_rng(0)
  x = (rng.random((b,) + shape) < 0.3).astype(np.float32)
  # On the device once, as the trainer's prefetched batches are.
  batch = sharding.shard_batch({'image': x, 'label': np.zeros(b, np.int32)},
                               sharding.data_sharded(mesh))
  key = jax.random.key(0)

  torch.set_num_threads(FLAGS.threads or os.cpu_count())
  dev = torch_device()
  tmodel = torch_models.VAE(config.model).to(dev)
  topt = torch.optim.Adam(tmodel.parameters(), lr=config.optim.lr)
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)

  def torch_step():
    topt.zero_grad(set_to_none=True)
    tmodel.loss(tx).backward()
    topt.step()

  return (config, model, lambda state: step(state, batch, key), state,
          tmodel, torch_step, tx)


def vae_throughput():
  """Train-step images/s of the VAE config: gensynth (JAX) vs PyTorch eager."""
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  config, _, step, state, tmodel, torch_step, _ = _vae_pair()
  b = config.batch_size
  state, jax_ips, torch_ips = _side_by_side(step, state, torch_step, b)
  return {'bench': 'vae_throughput', 'config': FLAGS.config, 'batch': b,
          'act': config.model.act,
          'jax_images_per_s': round(jax_ips, 1),
          'torch_images_per_s': round(torch_ips, 1),
          'ratio_jax_over_torch': round(jax_ips / torch_ips, 3),
          'jax_params': int(sum(p.size for p in jax.tree.leaves(state.params))),
          'torch_params': int(sum(p.numel() for p in tmodel.parameters())),
          **_devices(), 'torch_threads': torch.get_num_threads(),
          'torch_version': torch.__version__, 'jax_version': jax.__version__}


def conv_layers_of(model, params, images):
  """[(unbound conv module, its input shape)] in call order, found by running
  `model` once on `images` (flax method interception)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from gensynth.models import layers  # pylint: disable=g-import-not-at-top
  found = []

  def record(next_fun, args, kwargs, context):
    if context.method_name == '__call__' and isinstance(
        context.module, (nn.Conv, layers.ConvTranspose, layers.MaskedConv)):
      found.append((context.module.clone(parent=None), tuple(args[0].shape)))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    model.apply({'params': params}, images)
  return found


def vae_layers():
  """Where the VAE step's time goes: each conv layer of the VAE config alone
  (forward + backward: bias, weight and, unless it reads the image, input
  gradients) in gensynth and in the PyTorch twin, next to both whole train
  steps, all in one process. Each conv is found by running the model once
  (flax method interception; torch forward hooks), so the list is the
  config's own. Medians of FLAGS.rounds rounds of FLAGS.steps calls."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  config, model, step, state, tmodel, torch_step, timages = _vae_pair()
  images = jnp.asarray(timages.permute(0, 2, 3, 1).cpu().numpy())
  found = conv_layers_of(model, state.params, images)
  tfound = []
  hooks = [m.register_forward_hook(
      lambda m, inp, out: tfound.append((m, tuple(inp[0].shape))))
           for m in tmodel.modules()
           if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
  with torch.no_grad():
    tmodel.loss(timages)
  for h in hooks:
    h.remove()
  nchw = [(n, c, h, w) for n, h, w, c in (shape for _, shape in found)]
  if nchw != [shape for _, shape in tfound]:
    raise RuntimeError(f'conv inputs differ: gensynth {nchw} (as NCHW), the '
                       f'PyTorch twin {[s for _, s in tfound]}; the twin no '
                       'longer matches the model.')

  def rounds(fn):
    fn()
    times = []
    for _ in range(FLAGS.rounds):
      t = time.perf_counter()
      for _ in range(FLAGS.steps):
        fn()
      times.append((time.perf_counter() - t) / FLAGS.steps)
    return float(np.median(times)) * 1e3

  rng = np.random.default_rng(0)
  rows = []
  for (module, shape), (tmod, _) in zip(found, tfound):
    reads_image = tuple(shape) == tuple(images.shape)
    x = jnp.asarray(rng.standard_normal(shape, np.float32))
    params = module.init(jax.random.key(0), x)['params']
    r = jnp.asarray(rng.standard_normal(
        jax.eval_shape(module.apply, {'params': params}, x).shape, np.float32))
    # r is an argument, not a constant: XLA would fold the bias gradient.
    # The loss value is returned too: with gradients alone XLA drops the
    # forward conv (the gradients of sum(y * r) do not need y).
    loss = lambda p, x, r, m=module: jnp.sum(m.apply({'params': p}, x) * r)
    grad = jax.jit(jax.value_and_grad(
        loss, argnums=0 if reads_image else (0, 1)))
    tx = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(
        timages.device).requires_grad_(not reads_image)
    tr = torch.from_numpy(np.asarray(r).transpose(0, 3, 1, 2).copy()).to(
        timages.device)

    def torch_call(tmod=tmod, tx=tx, tr=tr):
      tmod.zero_grad(set_to_none=True)
      tx.grad = None
      (tmod(tx) * tr).sum().backward()
      if FLAGS.torch_device == 'cuda':
        torch.cuda.synchronize()

    jax_ms = rounds(lambda grad=grad, params=params, x=x, r=r:
                    jax.block_until_ready(grad(params, x, r)))
    torch_ms = rounds(torch_call)
    rows.append({'layer': type(module).__name__, 'name': module.name,
                 'input': list(shape), 'input_grad': not reads_image,
                 'jax_ms': round(jax_ms, 2), 'torch_ms': round(torch_ms, 2)})

  b = config.batch_size
  _, jax_ips, torch_ips = _side_by_side(step, state, torch_step, b)
  jax_step_ms, torch_step_ms = b / jax_ips * 1e3, b / torch_ips * 1e3
  total = lambda k: round(sum(row[k] for row in rows), 2)
  return {'bench': 'vae_layers', 'config': FLAGS.config,
          'batch': config.batch_size, 'act': config.model.act, 'rows': rows,
          'conv_layers_jax_ms': total('jax_ms'),
          'conv_layers_torch_ms': total('torch_ms'),
          'step_jax_ms': round(jax_step_ms, 2),
          'step_torch_ms': round(torch_step_ms, 2), **_devices(),
          'torch_threads': torch.get_num_threads(),
          'torch_version': torch.__version__, 'jax_version': jax.__version__}


def gan_throughput():
  """Images/s of one GAN train step (D step + G step + EMA), gensynth (JAX)
  vs the same architecture in PyTorch eager with the DCGAN training loop."""
  import copy  # pylint: disable=g-import-not-at-top
  import functools  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top

  from gensynth.steps import gan as gan_steps  # pylint: disable=g-import-not-at-top
  from gensynth.train import gan as gan_train  # pylint: disable=g-import-not-at-top
  from gensynth.train import sharding  # pylint: disable=g-import-not-at-top
  from gensynth.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from launch.bench import torch_models  # pylint: disable=g-import-not-at-top

  config = _load_config(FLAGS.config)
  if config.trainer != 'gan' or config.loss.kind != 'ns' or \
      config.loss.d_steps != 1 or config.loss.r1_weight or \
      config.loss.gp_weight or config.model.spectral_norm:
    raise app.UsageError('gan_throughput compares the plain non-saturating '
                         'recipe (ns loss, d_steps=1, no penalties, no '
                         'spectral norm).')
  b, classes, shape = config.batch_size, 10, (28, 28, 1)
  mesh = sharding.make_mesh()
  _, _, state = state_lib.gan(config, mesh, shape, classes)
  step = jax.jit(functools.partial(gan_steps.train_step,
                                   **gan_train.step_kwargs(config, classes)),
                 donate_argnums=0)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (b,) + shape).astype(np.float32)
  y = (np.arange(b) % classes).astype(np.int32)
  batch = sharding.shard_batch({'image': x, 'label': y},
                               sharding.data_sharded(mesh))
  key = jax.random.key(0)

  torch.set_num_threads(FLAGS.threads or os.cpu_count())
  dev = torch_device()
  g = torch_models.Generator(config.model, 28, 1, classes).to(dev)
  d = torch_models.Discriminator(config.model, 28, 1, classes).to(dev)
  ema = copy.deepcopy(g).requires_grad_(False)
  opt = lambda m, c: torch.optim.Adam(m.parameters(), lr=c.lr,
                                      betas=(c.b1, c.b2))
  g_opt, d_opt = opt(g, config.g_optim), opt(d, config.d_optim)
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)
  ty = torch.from_numpy(y).long().to(dev)
  nz, decay = config.model.latent_dim, config.ema.decay
  shared = config.loss.shared_fakes

  def torch_step():
    z = torch.randn(b, nz, device=dev)
    fy = torch.randint(0, classes, (b,), device=dev)
    fake = g(z, fy)
    d_opt.zero_grad(set_to_none=True)
    logits = d(torch.cat([tx, fake.detach()]), torch.cat([ty, fy]))
    (F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()
     ).backward()
    d_opt.step()
    if not shared:  # shared_fakes: G's loss on the same fakes (pytorch DCGAN)
      z = torch.randn(b, nz, device=dev)
      fy = torch.randint(0, classes, (b,), device=dev)
      fake = g(z, fy)
    g_opt.zero_grad(set_to_none=True)
    F.softplus(-d(fake, fy)).mean().backward()
    g_opt.step()
    with torch.no_grad():
      for e, p in zip(ema.parameters(), g.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)

  state, jax_ips, torch_ips = _side_by_side(
      lambda state: step(state, batch, key), state, torch_step, b)
  count = lambda tree: int(sum(p.size for p in jax.tree.leaves(tree)))
  tcount = lambda m: int(sum(p.numel() for p in m.parameters()))
  return {'bench': 'gan_throughput', 'config': FLAGS.config, 'batch': b,
          'jax_images_per_s': round(jax_ips, 1),
          'torch_images_per_s': round(torch_ips, 1),
          'ratio_jax_over_torch': round(jax_ips / torch_ips, 3),
          'jax_params_g_d': [count(state.g_params), count(state.d_params)],
          'torch_params_g_d': [tcount(g), tcount(d)],
          'shared_fakes': bool(shared),
          **_devices(), 'torch_threads': torch.get_num_threads(),
          'torch_version': torch.__version__, 'jax_version': jax.__version__}


def _alternating_rounds(cases):
  """{name: images/s} of jitted train steps {name: (step_fn, state, batch)}:
  each compiled and run once on a copy of its state, then FLAGS.rounds
  alternating rounds of FLAGS.steps steps each; medians."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  key = jax.random.key(0)
  runs = {}
  for name, (fn, state, batch) in cases.items():
    step = jax.jit(fn, donate_argnums=0)
    st, m = step(jax.tree.map(jnp.copy, state), batch, key)
    jax.block_until_ready(m)
    runs[name] = [step, st, batch, []]
  for _ in range(FLAGS.rounds):
    for run in runs.values():
      t = time.perf_counter()
      for _ in range(FLAGS.steps):
        run[1], m = run[0](run[1], run[2], key)
      jax.block_until_ready(m)
      run[3].append(time.perf_counter() - t)
  return {name: run[2]['image'].shape[0] * FLAGS.steps /
          float(np.median(run[3])) for name, run in runs.items()}


def layer_impl():
  """Train-step images/s of the VAE and two GAN recipes on JAX's default
  backend under `config.model.conv_impl='fast'` (gensynth.models.fast_conv)
  and 'xla' (lax's own convs and their autodiff). Alternating rounds in one
  process; the two share parameters and data."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from gensynth.configs import gan_mnist  # pylint: disable=g-import-not-at-top
  from gensynth.configs import vae_mnist  # pylint: disable=g-import-not-at-top
  from gensynth.steps import gan as gan_steps  # pylint: disable=g-import-not-at-top
  from gensynth.steps import vae as vae_steps  # pylint: disable=g-import-not-at-top
  from gensynth.train import gan as gan_train  # pylint: disable=g-import-not-at-top
  from gensynth.train import sharding  # pylint: disable=g-import-not-at-top
  from gensynth.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from gensynth.train import vae as vae_train  # pylint: disable=g-import-not-at-top

  mesh = sharding.make_mesh()
  data = sharding.data_sharded(mesh)
  rng = np.random.default_rng(0)

  def vae_case(impl):
    c = vae_mnist.get_config()
    c.model.conv_impl = impl
    _, state = state_lib.vae(c, mesh, (28, 28, 1), 10, 10_000)
    return functools.partial(vae_steps.train_step,
                             **vae_train.step_kwargs(c)), state

  def gan_case(variant, impl):
    c = gan_mnist.get_config(variant)
    c.model.conv_impl = impl
    _, _, state = state_lib.gan(c, mesh, (28, 28, 1), 10)
    return functools.partial(gan_steps.train_step,
                             **gan_train.step_kwargs(c, 10)), state

  n = vae_mnist.get_config().batch_size
  x = (rng.random((n, 28, 28, 1)) < 0.3).astype(np.float32)
  cases = [('vae_mnist', vae_case, sharding.shard_batch(
      {'image': x, 'label': np.zeros(n, np.int32)}, data))]
  for variant in ('cond', 'cond,smooth,r1,adam0,shared,wide'):
    n = gan_mnist.get_config(variant).batch_size
    x = rng.uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)
    y = (np.arange(n) % 10).astype(np.int32)
    cases.append((f'gan_mnist:{variant}', functools.partial(gan_case, variant),
                  sharding.shard_batch({'image': x, 'label': y}, data)))
  rows = []
  for name, make, batch in cases:
    ips = _alternating_rounds({impl: make(impl) + (batch,)
                               for impl in ('fast', 'xla')})
    rows.append({'step': name,
                 'fast_images_per_s': round(ips['fast'], 1),
                 'xla_images_per_s': round(ips['xla'], 1),
                 'fast_over_xla': round(ips['fast'] / ips['xla'], 3)})
  return {'bench': 'layer_impl', 'device': jax.devices()[0].device_kind,
          'rows': rows, 'jax_version': jax.__version__}


def condition_cost():
  """Train-step images/s of the MNIST GAN benchmark recipe and the MNIST VAE
  conditioned on class ids, Morpho-MNIST vectors (one-hot digit + 5
  measurements) and captions: what the condition encoders cost. Alternating
  rounds in one process on the same images; the GAN times the step without
  the lazy R1 penalty (15 of every 16 steps)."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from gensynth.configs import gan_mnist  # pylint: disable=g-import-not-at-top
  from gensynth.configs import vae_mnist  # pylint: disable=g-import-not-at-top
  from gensynth.data import conditions  # pylint: disable=g-import-not-at-top
  from gensynth.data import morpho  # pylint: disable=g-import-not-at-top
  from gensynth.steps import gan as gan_steps  # pylint: disable=g-import-not-at-top
  from gensynth.steps import vae as vae_steps  # pylint: disable=g-import-not-at-top
  from gensynth.train import gan as gan_train  # pylint: disable=g-import-not-at-top
  from gensynth.train import sharding  # pylint: disable=g-import-not-at-top
  from gensynth.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from gensynth.train import vae as vae_train  # pylint: disable=g-import-not-at-top

  mesh = sharding.make_mesh()
  data = sharding.data_sharded(mesh)
  rng = np.random.default_rng(0)
  n_cond = 2048  # conditions the specs (vector statistics, vocabulary) see
  labels = rng.integers(0, 10, n_cond)
  metrics = np.stack([rng.uniform(1.5, 5.0, n_cond),
                      rng.uniform(-0.6, 0.6, n_cond),
                      rng.integers(4, 21, n_cond), rng.integers(14, 21, n_cond),
                      rng.integers(50, 250, n_cond)], -1).astype(np.float32)
  vectors = morpho.vectors(labels, metrics)
  vocab = conditions.Vocabulary.build(morpho.captions(labels, metrics))
  tokens = vocab.encode(morpho.captions(labels, metrics))
  specs = {'cond': None,
           'vector': conditions.spec_of('vector', vectors,
                                        names=morpho.VECTOR_FIELDS),
           'text': conditions.spec_of('text', vocab=vocab)}
  conds = {'cond': labels.astype(np.int32), 'vector': vectors,
           'text': tokens}

  def batch_of(kind, x):
    n = len(x)
    b = {'image': x, 'label': labels[:n].astype(np.int32)}
    if kind != 'cond':
      b['cond'] = conds[kind][:n]
    return sharding.shard_batch(b, data)

  def gan_case(kind):
    c = gan_mnist.get_config(f'{kind},smooth,r1,adam0,shared,wide')
    _, _, state = state_lib.gan(c, mesh, (28, 28, 1), 10, specs[kind])
    fn = functools.partial(gan_steps.train_step, r1_now=False,
                           **gan_train.step_kwargs(c, 10, specs[kind]))
    x = rng.uniform(-1, 1, (c.batch_size, 28, 28, 1)).astype(np.float32)
    return fn, state, batch_of(kind, x)

  def vae_case(kind):
    c = vae_mnist.get_config(kind)
    _, state = state_lib.vae(c, mesh, (28, 28, 1), 10, 10_000, specs[kind])
    fn = functools.partial(vae_steps.train_step, **vae_train.step_kwargs(c))
    x = (rng.random((c.batch_size, 28, 28, 1)) < 0.3).astype(np.float32)
    return fn, state, batch_of(kind, x)

  rows = []
  for model, make in (('gan_mnist', gan_case), ('vae_mnist', vae_case)):
    cases = {kind: make(kind) for kind in ('cond', 'vector', 'text')}
    ips = _alternating_rounds(cases)
    for kind, (_, state, _) in cases.items():
      params = (state.params if hasattr(state, 'params') else
                (state.g_params, state.d_params))
      rows.append({'model': model, 'condition': kind,
                   'images_per_s': round(ips[kind], 1),
                   'over_class_ids': round(ips[kind] / ips['cond'], 3),
                   'params': int(sum(p.size for p in
                                     jax.tree.leaves(params)))})
  return {'bench': 'condition_cost', 'device': jax.devices()[0].device_kind,
          'steps': FLAGS.steps, 'rounds': FLAGS.rounds, 'rows': rows,
          'jax_version': jax.__version__}


def _devices():
  import jax  # pylint: disable=g-import-not-at-top
  return {'jax_device': str(jax.devices()[0].device_kind),
          'torch_device': FLAGS.torch_device}


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
