"""The errors mots_ros raises on purpose.

Every error carries a message that names the offending input (a file, a line, a parameter, an image
field) so that a log line alone is enough to fix the problem.
"""


class MotsError(Exception):
    """Base class of every error raised on purpose by mots_ros."""


class InputError(MotsError, ValueError):
    """A frame, image, flow field or mask that cannot be processed.

    Args:
        message: what is wrong, naming the field.
        kind: the kind of problem (``encoding``, ``step``, ``length``, ``size``, ``header``, ...),
            which keys the node's log throttle: the message itself may vary without bound.
    """

    def __init__(self, message: str, *, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


class ConfigError(MotsError, ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""


class CheckpointError(MotsError):
    """A checkpoint that cannot be read or does not fit the model."""


class BackendError(MotsError):
    """An inference backend that is missing, misconfigured or failed."""


class FormatError(MotsError, ValueError):
    """A malformed line in a MOTS text file or a malformed dataset layout."""
