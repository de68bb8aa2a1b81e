"""orbax checkpointing with restore-or-init and fallback past damaged steps.

The state is saved as its Flax state dict (nested dicts of arrays) through
orbax's StandardSave: no pickle, and any pytree of arrays restores into the
template it came from.
"""

import os

import flax
import jax
import orbax.checkpoint as ocp
from absl import logging

from gensynth import errors


class CheckpointMismatchError(errors.CheckpointError):
  """The checkpoint on disk does not fit the model being restored."""


def _paths(tree):
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(p): getattr(v, 'shape', ()) for p, v in flat}


class Checkpointer:
  """Wraps `ocp.CheckpointManager` for one train state under `workdir`."""

  def __init__(self, workdir, *, save_every, keep=3, async_save=True,
               use_ocdbt=True):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    # use_ocdbt=False writes one TensorStore array per leaf instead of orbax's
    # default OCDBT key-value database (more files; restores read either).
    handlers = {} if use_ocdbt else dict(
        item_handlers=ocp.StandardCheckpointHandler(use_ocdbt=False))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, save_interval_steps=save_every, create=True,
            enable_async_checkpointing=async_save), **handlers)

  def _check_structure(self, step, target):
    """Compares parameter paths and shapes with the saved ones."""
    path = os.path.join(self.directory, str(step), 'default')
    try:
      saved = ocp.StandardCheckpointer().metadata(path).item_metadata
    except Exception:  # pylint: disable=broad-except
      return  # Unreadable metadata: restore reports it and falls back.
    if saved is None:
      return
    want, have = _paths(target), _paths(saved)
    order = lambda k: (not k.startswith("['params']"), k)  # params first
    missing = sorted(set(want) - set(have), key=order)
    extra = sorted(set(have) - set(want), key=order)
    shape = sorted((k for k in set(want) & set(have)
                    if tuple(want[k]) != tuple(have[k])), key=order)
    if missing or extra or shape:
      lines = [f'  missing in checkpoint: {k}' for k in missing[:20]]
      lines += [f'  unexpected in checkpoint: {k}' for k in extra[:20]]
      lines += [f'  shape {tuple(have[k])} in checkpoint, {tuple(want[k])} in '
                f'model: {k}' for k in shape[:20]]
      raise CheckpointMismatchError(
          f'checkpoint step {step} in {self.directory} was written by a '
          f'different model/optimizer config ({len(missing)} missing, '
          f'{len(extra)} unexpected, {len(shape)} reshaped arrays):\n' +
          '\n'.join(lines) +
          '\nUse the config the checkpoint was trained with, or a fresh '
          '--workdir.')

  def restore_or_init(self, state, *, step=None):
    """Returns the newest restorable checkpoint's state, else `state`.

    A step that fails to restore (truncated or corrupted files) is skipped with
    a warning naming it; older steps are tried in turn. Nothing is deleted.
    With `step`, exactly that checkpoint is restored (or an error raised).
    """
    target = flax.serialization.to_state_dict(state)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    steps = sorted(self.manager.all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise errors.CheckpointNotFoundError(
            f'no checkpoint step {step} in '
            f'{self.directory}; available: {steps[::-1]}.')
      self._check_structure(step, target)
      restored = self.manager.restore(step,
                                      args=ocp.args.StandardRestore(abstract))
      return flax.serialization.from_state_dict(state, restored)
    for step in steps:
      self._check_structure(step, target)
      try:
        restored = self.manager.restore(
            step, args=ocp.args.StandardRestore(abstract))
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('Checkpoint step %d in %s cannot be restored (%s: %s); '
                        'trying an older step. The damaged step is left on '
                        'disk.', step, self.directory, type(e).__name__, e)
        continue
      logging.info('Restored checkpoint step %d from %s.', step, self.directory)
      return flax.serialization.from_state_dict(state, restored)
    return state

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step, state, *, force=False):
    return self.manager.save(
        step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
        force=force)

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def restore_trained(workdir, state, *, step=None):
  """`state` restored from the newest (or the given) checkpoint in `workdir`.

  For evaluation and sampling: a workdir without any checkpoint is an error
  that says how to make one, not a silently untrained model.
  """
  ckpt = Checkpointer(workdir, save_every=1)
  try:
    if ckpt.latest_step() is None:
      raise errors.CheckpointNotFoundError(
          f'no checkpoint under {ckpt.directory}; train '
          f'first with launch.train --workdir={workdir}')
    return ckpt.restore_or_init(state, step=step)
  finally:
    ckpt.close()
