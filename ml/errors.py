"""The exceptions that ml/ raises on purpose, each with a human-readable reason."""


class MarrowFindMLError(Exception):
    """Base class for every deliberate error raised by ml/."""


class ImageLoadError(MarrowFindMLError, ValueError):
    """A file could not be used as a microscope image.

    ``code`` is a stable machine-readable kind (``empty``, ``truncated``,
    ``not_an_image``, ``wrong_extension``, ``too_small``, ``too_large``, ...);
    ``reason`` is the sentence shown to lab staff.
    """

    def __init__(self, code: str, reason: str, *, filename: str | None = None):
        self.code = code
        self.reason = reason
        self.filename = filename
        prefix = f"{filename}: " if filename else ""
        super().__init__(f"{prefix}{reason}")


class WeightsUnavailableError(MarrowFindMLError, RuntimeError):
    """Pretrained weights were asked for but cannot be had (offline, missing file...)."""


class CheckpointError(MarrowFindMLError, ValueError):
    """A checkpoint file is missing, corrupt, or not in the Marrow-Find format."""


class DatasetError(MarrowFindMLError, ValueError):
    """A training or evaluation data set has a layout that cannot be used."""
