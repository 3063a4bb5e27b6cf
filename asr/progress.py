"""Progress bars for long work: shown in a terminal only, never in logs or pipes."""
from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, enabled: bool = True, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)`, disabled unless `enabled` and stderr is a terminal. Log records
    go around the bar when the caller runs inside `tqdm.contrib.logging.logging_redirect_tqdm`
    (the `asr` command does)."""
    return tqdm(iterable, disable=not (enabled and sys.stderr.isatty()), leave=False, **kwargs)
