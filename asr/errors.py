"""The project's error types. The `asr` command turns these, and only these, into one line naming
the file or setting and the reason, with a documented exit code; any other exception is a bug and
keeps its traceback.

Exit codes of `asr`: 0 done; 1 some inputs failed and the others were done (transcribe); 2 a bad
input or setting (`AsrError`; argparse's own usage errors too); 3 the machine refused (full disk,
read-only folder, no network, no GPU: `ResourceError` and those OS errors); 130 interrupted.
"""
from __future__ import annotations


class AsrError(Exception):
    """A mistake in what the user gave us; the message names the file or setting and the reason."""

    exit_code = 2


class InputError(AsrError, ValueError):
    """A bad value: a setting, a flag or data that cannot be used."""


class MissingFileError(AsrError, FileNotFoundError):
    """A file or folder that the user named is not there, or is not what it should be."""


class ConfigError(AsrError):
    """A Hydra override or configuration value that cannot be used."""


class ResourceError(AsrError):
    """The machine cannot do what was asked: no GPU, no network, no space."""

    exit_code = 3
