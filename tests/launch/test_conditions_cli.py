"""Text- and vector-conditioned runs through the real launch path: train,
sample from prompts and vectors, score condition fidelity; data-parallel
and resumed text runs equal a single uninterrupted one.

Each subprocess costs an interpreter, JAX and a compile, so the CLI is run
where the CLI itself is under test and the library is called in-process
for the rest."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from gensynth import errors
from gensynth.evaluation import conditions as fidelity_lib
from gensynth.evaluation import sampling
from gensynth.train import workdir as workdir_lib
from tests import helpers

# The smooth non-saturating loss instead of the recipe's hinge: a hinge
# logit that sits on its kink flips with round-off, which turns a 1e-5
# difference between one and two devices into a 15% one in a few steps
# (measured); the equality test below needs a loss that does not.
# No lazy R1 either: one compiled step per run instead of two (10 s each).
TEXT = ['--config=gensynth/configs/gan_shapes.py:smoke,text,heldout',
        '--config.loss.kind=ns', '--config.loss.r1_weight=0']


def _train(workdir, *args, devices=None):
  helpers.run_launch('train', *args, f'--workdir={workdir}', devices=devices)
  return workdir


@pytest.fixture(scope='module')
def gan_text(tmp_path_factory):
  return helpers.shared_run(tmp_path_factory, 'conditions_gan_text', *TEXT)


@pytest.fixture(scope='module')
def text_model(gan_text):
  return sampling.load(workdir_lib.load_config(gan_text), gan_text)


@pytest.fixture(scope='module')
def vae_vector(tmp_path_factory):
  return helpers.shared_run(tmp_path_factory, 'conditions_vae_vector',
                            '--config=gensynth/configs/vae_shapes.py:smoke,vector')


def _sample(workdir, *args, check=True):
  proc = helpers.run_launch('sample', f'--workdir={workdir}', *args,
                            check=check)
  return json.loads(proc.stdout) if check else proc


def test_text_run_saves_its_vocabulary_and_samples_prompts(gan_text):
  info = json.load(open(os.path.join(gan_text, 'info.json')))
  assert info['condition']['kind'] == 'text'
  assert {'large', 'blue', 'ring', 'bottom'} <= set(info['condition']['words'])
  out = _sample(gan_text, '--mode=text', '--per_class=5', '--zoom=2',
                '--prompts=a large blue ring at the bottom;a small green '
                'cross;red disc')
  grid = np.asarray(Image.open(out['path']))
  assert out['shape'] == [15, 32, 32, 3]
  assert grid.shape == (3 * 65 + 1, 5 * 65 + 1, 3)  # a row per prompt
  # Zoom repeats pixels: every 2x2 block of a tile is one colour.
  tile = grid[1:65, 1:65].astype(int)
  np.testing.assert_array_equal(tile[::2, ::2], tile[1::2, 1::2])
  # Unknown words: one line naming them and the known words.
  proc = _sample(gan_text, '--mode=text', '--prompts=a purple disc',
                 check=False)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert "['purple']" in proc.stderr and 'known words' in proc.stderr


def test_condition_paths_mixes_and_errors(text_model):
  m = text_model
  conds = m.conditions(prompts=['a red disc', 'a blue square'])
  path, cols = m.condition_path(0, conds, num_paths=2, num_steps=4)
  assert path.shape == (8, 32, 32, 3) and cols == 4
  assert path.min() >= 0 and path.max() <= 1
  # Along a row only the condition moves: its two ends differ.
  assert not np.allclose(path[0], path[3], atol=1e-3)
  mix, cols = m.mix(0, conds, [1, 3], per_row=3)
  assert mix.shape == (9, 32, 32, 3) and cols == 3
  # Weight (1, 0) is the first condition itself.
  only_first, _ = m.mix(0, conds, [1, 0], per_row=3)
  np.testing.assert_allclose(only_first[6:], only_first[:3], atol=1e-5)
  assert not np.allclose(mix[6:], mix[:3], atol=1e-3)
  dropped = m.conditions(prompts=['a purple disc'], unknown='drop')
  np.testing.assert_array_equal(dropped, m.conditions(prompts=['a disc']))
  with pytest.raises(errors.InputError, match='text-conditioned'):
    m.conditions(vectors=[[1.0, 2.0]])
  with pytest.raises(errors.InputError, match='--mode=text'):
    m.grid(0)
  with pytest.raises(errors.InputError, match='non-negative'):
    m.mix(0, conds, [1, -1])


def test_fidelity_reports_generated_real_and_heldout(gan_text):
  out = json.loads(helpers.run_launch(
      'evaluate', f'--workdir={gan_text}', '--fidelity',
      '--num_generated=40', '--r_precision_steps=5',
      '--diversity_conditions=12', '--diversity_samples=3').stdout)
  run = out['run']
  assert run['condition'] == 'text' and run['scored_as'] == 'text'
  for split in ('test', 'heldout'):
    real = run[split]['real']
    # The ceiling: real images obey their own captions exactly.
    assert real['joint_accuracy'] == 1.0 and real['kind_accuracy'] == 1.0
    gen = run[split]['generated']
    assert gen['num_samples'] == 40
    assert 0.0 <= gen['joint_accuracy'] <= gen['kind_accuracy'] <= 1.0
    assert gen['r_precision_candidates'] == 40
    assert 0.0 <= gen['r_precision'] <= 1.0
    # 40 captions of which some are true of several images: fewer
    # mismatched candidates than 40, never more.
    assert 2 <= gen['r_precision_mismatched_candidates'] <= 40
    assert 0.0 <= gen['r_precision_mismatched'] <= 1.0
    # Contradicting captions are a subset of the mismatched ones.
    assert (2 <= gen['r_precision_contradicting_candidates']
            <= gen['r_precision_mismatched_candidates'])
    assert 0.0 <= gen['r_precision_contradicting'] <= 1.0
  # Diversity within a condition: 3 samples for each test caption true of
  # at least 3 real images, beside 3 of those images.
  div = run['test']['diversity']
  assert 1 <= div['conditions'] <= 12 and div['samples_per_condition'] == 3
  for side in ('generated', 'real'):
    assert div[side]['pixel_distance'] > 0
  # The kind is always named, so never open; real images vary in what
  # captions leave open (some of 12 captions omit the position).
  assert 'kind_open_entropy' not in div['real']
  assert div['real']['position_open_entropy'] > 0
  assert div['pixel_distance_ratio'] == pytest.approx(
      div['generated']['pixel_distance'] / div['real']['pixel_distance'])
  assert set(out['summary']) >= {'test_generated', 'test_real',
                                 'heldout_generated', 'heldout_real',
                                 'test_diversity'}
  with pytest.raises(errors.InputError, match='needs at least 2'):
    fidelity_lib.fidelity(workdir_lib.load_config(gan_text), gan_text,
                          diversity_samples=1)


def test_vector_run_samples_vectors_from_text_and_npy(vae_vector, tmp_path):
  spec = json.load(open(os.path.join(vae_vector, 'info.json')))['condition']
  assert spec['kind'] == 'vector' and spec['dim'] == 12
  assert spec['names'][:2] == ['kind_disc', 'kind_square']
  assert len(spec['mean']) == len(spec['std']) == 12 and min(spec['std']) > 0
  rows = ['1,0,0,0,0,0,0.9,0.15,0.15,0.25,0.5,0.5',
          '0,0,0,1,0,0,0.2,0.35,0.95,0.14,0.28,0.72']
  npy = tmp_path / 'v.npy'
  np.save(npy, np.array([[float(v) for v in r.split(',')] for r in rows]))
  out = _sample(vae_vector, '--mode=vector', '--per_class=4',
                f'--vectors={npy}')
  assert out['shape'] == [8, 32, 32, 3]
  config = workdir_lib.load_config(vae_vector)
  model = sampling.load(config, vae_vector)
  conds = model.conditions(vectors=[[float(v) for v in r.split(',')]
                                    for r in rows])
  images, _ = model.conditioned(0, conds, per_row=4)
  np.testing.assert_allclose(
      np.asarray(Image.open(out['path']))[1:33, 1:33] / 255.0, images[0],
      atol=1 / 255 + 1e-6)
  with pytest.raises(errors.InputError, match='12 values'):
    model.conditions(vectors=[[1.0, 2.0, 3.0]])
  record = fidelity_lib.fidelity(config, vae_vector, num_samples=16,
                                 diversity_conditions=4, diversity_samples=3)
  gen = record['test']['generated']
  assert record['scored_as'] == 'vector'
  assert {'red_r', 'radius_mae', 'x_r', 'position_accuracy'} <= set(gen)
  # Vectors name every attribute: nothing is open, and the real reference
  # is each vector's 3 nearest real images.
  div = record['test']['diversity']
  assert div['conditions'] == 4
  assert div['real']['position_open_entropy'] is None
  assert div['real']['pixel_distance'] > 0


@pytest.mark.parametrize('run', ['gan_text', 'vae_vector'])
def test_latent_scale_shrinks_the_prior_draws(run, request, tmp_path):
  """psi = 0: every sample of one condition is the one at z = 0 (GAN and
  factorised VAE decoders are deterministic given z); psi = 1 is the model
  as trained; the CLI takes the flag and rejects a negative one."""
  workdir = request.getfixturevalue(run)
  config = workdir_lib.load_config(workdir)
  plain = sampling.load(config, workdir)
  kind = plain.spec['kind']
  conds = (plain.conditions(prompts=['a red disc'] * 3) if kind == 'text'
           else plain.conditions(vectors=[[1.0] + [0.0] * 5 +
                                          [0.5] * 6] * 3))
  zero = sampling.load(config, workdir, latent_scale=0.0).generate(0, conds)
  np.testing.assert_array_equal(zero[0], zero[1])
  np.testing.assert_array_equal(zero[0], zero[2])
  drawn = plain.generate(0, conds)
  assert not np.allclose(drawn[0], drawn[1], atol=1e-4)
  np.testing.assert_array_equal(
      drawn, sampling.load(config, workdir, latent_scale=1.0).generate(0,
                                                                       conds))
  with pytest.raises(errors.InputError, match='latent_scale=-1'):
    sampling.load(config, workdir, latent_scale=-1.0)
  with pytest.raises(errors.InputError, match='shapes_seed'):
    fidelity_lib.fidelity(config, workdir, digits_split='validation')
  if run == 'gan_text':
    proc = _sample(workdir, '--mode=text', '--prompts=a red disc',
                   '--latent_scale=-0.5', check=False)
    assert proc.returncode != 0 and 'latent_scale' in proc.stderr


def test_candidates_keep_the_sample_the_discriminator_scores_highest(
    gan_text, vae_vector, tmp_path):
  """candidates=K: each image is, of K samples for its condition, the one
  D scores highest (checked against D's logits computed here); candidate 0
  is the plain sample, so K = 1 is sampling as before; a VAE, a path and a
  mix refuse it; the CLI takes the flag."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gensynth.evaluation import runs  # pylint: disable=g-import-not-at-top
  from gensynth.steps import gan as gan_steps  # pylint: disable=g-import-not-at-top
  config = workdir_lib.load_config(gan_text)
  plain = sampling.load(config, gan_text)
  conds = plain.conditions(prompts=['a red disc', 'a small green cross',
                                    'a large blue ring at the bottom'] * 2)
  k = 4
  best = sampling.load(config, gan_text, candidates=k)
  chosen = best.generate(0, conds)
  # The same draws by hand: chunk 0's latent key, K candidate latents.
  n = best.chunk
  c = np.concatenate([conds, np.repeat(conds[-1:], n - len(conds), 0)])
  z_key = jax.random.split(jax.random.fold_in(jax.random.key(0), 0))[0]
  z = gan_steps.candidate_latents(z_key, n, config.model.latent_dim, k)
  _, state, _ = runs.load_gan(config, gan_text)
  cands = np.stack([np.asarray(state.g_apply({'params': state.ema_params},
                                             z[i], jnp.asarray(c)))
                    for i in range(k)])  # [K, chunk, ...]
  # D scores a candidate's whole chunk as one batch, padded with copies of
  # its last row to a multiple of the minibatch-std group (4 here).
  group = config.model.d_mbstd_group
  assert group == 4 and n % group
  extra = (-n) % group
  d_vars = gan_steps.discriminator_variables(state)
  logits = np.stack([np.asarray(state.d_apply(
      d_vars, jnp.asarray(np.concatenate([x, np.repeat(x[-1:], extra, 0)])),
      jnp.asarray(np.concatenate([c, np.repeat(c[-1:], extra, 0)])))
                                ).reshape(-1)[:len(conds)] for x in cands])
  cands = cands[:, :len(conds)]
  pick = logits.argmax(0)
  assert len(set(pick.tolist())) > 1  # the test can tell candidates apart
  np.testing.assert_allclose(chosen, (cands[pick, np.arange(len(conds))]
                                      + 1) / 2, atol=1e-5)
  # Candidate 0 is the plain sample: K = 1 changes nothing.
  np.testing.assert_allclose((cands[0] + 1) / 2, plain.generate(0, conds),
                             atol=1e-5)
  np.testing.assert_array_equal(
      plain.generate(0, conds),
      sampling.load(config, gan_text, candidates=1).generate(0, conds))
  rows, per_row = best.conditioned(0, conds[:2], per_row=3)
  assert rows.shape == (6, 32, 32, 3) and per_row == 3
  for bad, match in ((0, 'candidates=0'), (2.5, 'candidates=2.5')):
    with pytest.raises(errors.InputError, match=match):
      sampling.load(config, gan_text, candidates=bad)
  with pytest.raises(errors.InputError, match='discriminator'):
    best.condition_path(0, conds[:2])
  with pytest.raises(errors.InputError, match='discriminator'):
    best.mix(0, conds[:2], [1, 1])
  with pytest.raises(errors.InputError, match="GAN's discriminator"):
    sampling.load(workdir_lib.load_config(vae_vector), vae_vector,
                  candidates=2)
  out = _sample(gan_text, '--mode=text', '--prompts=a red disc;a blue square',
                '--per_class=3', '--candidates=3',
                f'--output={tmp_path}')
  assert out['shape'] == [6, 32, 32, 3]
  proc = _sample(vae_vector, '--mode=vector', '--vectors=' + ','.join(
      ['1'] + ['0'] * 5 + ['0.5'] * 6), '--candidates=2', check=False)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert "GAN's discriminator" in proc.stderr


def test_candidates_ranked_by_match_or_both(gan_text, tmp_path):
  """select='match' keeps, per row, the candidate whose D projection gives
  its own caption the highest log-probability against the other rows'
  different captions; 'both' adds D's logit (checked against scores
  computed here from D's parts); select needs K > 1 and a known word."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gensynth.evaluation import runs  # pylint: disable=g-import-not-at-top
  from gensynth.steps import gan as gan_steps  # pylint: disable=g-import-not-at-top
  config = workdir_lib.load_config(gan_text)
  plain = sampling.load(config, gan_text)
  conds = plain.conditions(prompts=['a red disc', 'a small green cross',
                                    'a large blue ring at the bottom',
                                    'a red disc'])
  k = 4
  _, state, _ = runs.load_gan(config, gan_text)
  d_vars = gan_steps.discriminator_variables(state)
  n = plain.chunk
  c = np.concatenate([conds, np.repeat(conds[-1:], n - len(conds), 0)])
  z_key = jax.random.split(jax.random.fold_in(jax.random.key(0), 0))[0]
  z = gan_steps.candidate_latents(z_key, n, config.model.latent_dim, k)
  cands = np.stack([np.asarray(state.g_apply({'params': state.ema_params},
                                             z[i], jnp.asarray(c)))
                    for i in range(k)])
  extra = (-n) % config.model.d_mbstd_group
  cpad = np.concatenate([c, np.repeat(c[-1:], extra, 0)])
  # The chunk's rows: 4 prompts, then copies of the last (the same caption
  # as row 0): every row's negatives are the two other captions.
  same = np.all(cpad[:, None] == cpad[None], -1)
  match, logit = [], []
  for x in cands:
    base, proj, phi = (np.asarray(a, np.float64) for a in state.d_apply(
        d_vars, jnp.asarray(np.concatenate([x, np.repeat(x[-1:], extra, 0)])),
        jnp.asarray(cpad), parts=True))
    sims = phi @ proj.T
    sims[same & ~np.eye(len(sims), dtype=bool)] = -np.inf
    own = np.diagonal(sims)
    match.append((own - np.log(np.exp(sims).sum(1)))[:len(conds)])
    logit.append((base + own)[:len(conds)])
  match, logit = np.stack(match), np.stack(logit)
  cands = cands[:, :len(conds)]
  for select, score in (('match', match), ('both', match + logit)):
    pick = score.argmax(0)
    chosen = sampling.load(config, gan_text, candidates=k,
                           select=select).generate(0, conds)
    np.testing.assert_allclose(chosen, (cands[pick, np.arange(len(conds))]
                                        + 1) / 2, atol=1e-5)
  assert (match.argmax(0) != logit.argmax(0)).any()  # the scores differ
  with pytest.raises(errors.InputError, match="select='match' ranks"):
    sampling.load(config, gan_text, select='match')
  with pytest.raises(errors.InputError, match="select='best'.*logit, match"):
    sampling.load(config, gan_text, candidates=2, select='best')
  out = _sample(gan_text, '--mode=text', '--prompts=a red disc;a blue square',
                '--per_class=2', '--candidates=3', '--select=match',
                f'--output={tmp_path}')
  assert out['shape'] == [4, 32, 32, 3]
  proc = _sample(gan_text, '--mode=text', '--prompts=a red disc',
                 '--select=both', check=False)
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert "select='both' ranks candidates" in proc.stderr


def _close(a, b, **tol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def test_two_devices_and_a_resumed_run_match_one_run(gan_text, tmp_path):
  two = _train(str(tmp_path / 'two'), *TEXT, devices=2)
  # A copy of the reference run stopped after step 4 (its last checkpoint
  # removed), then restarted with the same command: resumes at 4, ends at 6.
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(gan_text, resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '6'))
  _train(resumed, *TEXT)
  s_ref, p_ref = helpers.restore_params(gan_text)
  s_two, p_two = helpers.restore_params(two)
  s_res, p_res = helpers.restore_params(resumed)
  assert s_ref == s_two == s_res == 6
  assert 'condition' in p_ref['g_params'] and 'condition' in p_ref['d_params']
  # The tolerance of the class-conditional GAN's test
  # (tests/train/test_multidevice.py): sums over two devices round
  # differently.
  _close(p_ref, p_two, rtol=2e-4, atol=2e-5)
  _close(p_ref, p_res, rtol=0, atol=0)  # a resumed run is bit-identical
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()), p_ref['g_params']['condition'],
      helpers.restore_params(gan_text, step=2)[1]['g_params']['condition']))
  assert max(moved) > 1e-5  # the text encoder did train
