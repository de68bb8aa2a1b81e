"""Data parallelism with jax.jit over a one-axis Mesh of every device.

Parameters and optimizer state are replicated; batches are split along the
'data' axis. The same code runs on one CPU, on every GPU of a host, and (after
`jax.distributed.initialize`) on every device of every host.
"""

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gensynth import errors


def make_mesh(devices=None):
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def replicated(mesh):
  return NamedSharding(mesh, P())


def data_sharded(mesh):
  return NamedSharding(mesh, P('data'))


def check_batch_size(global_batch_size, mesh, what='config.batch_size'):
  """Raises a ValueError unless the batch splits evenly over devices/processes."""
  n = mesh.devices.size
  if global_batch_size <= 0 or global_batch_size % n:
    raise errors.ConfigError(
        f'{what}={global_batch_size} must be a positive multiple of the device '
        f'count {n} ({jax.process_count()} process(es) x '
        f'{jax.local_device_count()} local device(s)).')
  if global_batch_size % jax.process_count():
    raise errors.ConfigError(
        f'{what}={global_batch_size} must be divisible by the '
        f'process count {jax.process_count()}.')


def shard_batch(batch, sharding):
  """Process-local NumPy batch -> global jax.Array sharded along 'data'."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def round_up(n, mesh):
  """`n` rounded up to a multiple of the mesh's device count (a batch size
  every device gets an equal share of)."""
  d = mesh.devices.size
  return -(-n // d) * d
