"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


class PolyheadError(Exception):
    """An error caused by the user's input (file, config, model name), not by a bug."""


class ConfigError(PolyheadError):
    """A config key is unknown, missing or of the wrong type."""


class DataError(PolyheadError):
    """A data file is missing or malformed; the message names the file and line."""


class BackboneError(PolyheadError):
    """A backbone name, folder or alias cannot be resolved or loaded."""
