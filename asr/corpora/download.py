"""Getting a corpus onto the disk: a local folder as it is, an archive unpacked, a URL downloaded
and unpacked. Downloading is kept apart from preparing: a preparer only ever reads a folder."""
from __future__ import annotations

import logging
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from asr.errors import MissingFileError, ResourceError

log = logging.getLogger(__name__)


def is_url(text: str) -> bool:
    return re.match(r"^(https?|ftp)://", text) is not None


def local_source(src: str | Path, work_dir: Path, what: str) -> Path:
    """A local folder for `src`: a folder as it is; an archive (or the URL of one, downloaded into
    `work_dir/download` once) unpacked into `work_dir/download/unpacked` once."""
    text = str(src)
    if is_url(text):
        archive = work_dir / "download" / Path(text).name
        if not archive.is_file():
            archive.parent.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s", text)
            partial = archive.with_suffix(archive.suffix + ".part")
            try:
                with urllib.request.urlopen(text, timeout=60) as response, partial.open("wb") as f:
                    shutil.copyfileobj(response, f)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                partial.unlink(missing_ok=True)
                reason = getattr(error, "reason", error)
                raise ResourceError(f"{text}: download failed ({reason}); with no network, pass a local copy "
                                    "or the archive with --src") from None
            partial.replace(archive)
        src = archive
    src = Path(src)
    if src.is_file() and tarfile.is_tarfile(src):
        dest = work_dir / "download" / "unpacked"
        marker = dest / f".{src.name}.done"
        if not marker.is_file():
            log.info("unpacking %s", src)
            with tarfile.open(src) as tar:
                tar.extractall(dest, filter="data")
            marker.touch()
        return dest
    if not src.is_dir():
        raise MissingFileError(f"{src}: not a folder, archive or URL of {what}")
    return src


def find_corpus_root(folder: Path, holds: Callable[[Path], bool], missing: str, prefer: Sequence[str] = (),
                     depth: int = 1) -> Path:
    """The first of `folder`, its subfolders named in `prefer`, and its other subfolders (sorted,
    down to `depth` levels) for which `holds(candidate)`; else `MissingFileError` "<folder>: no <missing>"."""
    levels = [sorted(folder.glob("/".join(["*"] * level) + "/")) for level in range(1, depth + 1)]
    for candidate in (folder, *(folder / name for name in prefer), *(p for level in levels for p in level)):
        if holds(candidate):
            return candidate
    raise MissingFileError(f"{folder}: no {missing}")
