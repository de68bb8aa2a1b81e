"""gensynth's user-facing errors: bad config, data, input, checkpoint or workdir.

Each is raised with one sentence that names what was wrong and what was
expected, and the launch scripts print it as one line (exit status 1). Any
other exception is a bug, in gensynth or in the caller, and keeps its
traceback. Each type also derives from the builtin exception a library user
would expect (ValueError, OSError, ...), so `except ValueError` keeps working.
"""


class Error(Exception):
  """Base of gensynth's user-facing errors."""


class ConfigError(Error, ValueError):
  """A config field, or a combination of fields, that cannot work."""


class DataError(Error, ValueError):
  """A data source that is missing, unreadable or not what the config says."""


class InputError(Error, ValueError):
  """An array, file or argument handed to an op or CLI has the wrong shape,
  dtype, range or value."""


class InputFileError(InputError, FileNotFoundError):
  """An input file that does not exist or cannot be read."""


class CheckpointError(Error, ValueError):
  """A checkpoint or run directory that is missing or does not fit the
  model being restored."""


class WorkdirError(Error, OSError):
  """A --workdir that cannot be created or written."""


class NonFiniteError(Error, FloatingPointError):
  """A training metric became NaN or Inf."""


class DataFileError(DataError, FileNotFoundError):
  """A data file or directory that does not exist."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
  """No checkpoint (or no run) where one was asked for."""
