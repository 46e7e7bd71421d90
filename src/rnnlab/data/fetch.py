"""Fetch loose official files (no archive around them) into ``data.root``: MNIST's four ``.gz``
files, Penn Treebank's three ``.txt`` files. For archives, see :func:`rnnlab.data.download.download`.

Same guarantees as there: each file is downloaded to a temporary name, verified against its
recorded checksum, then renamed; mirrors are tried in order; offline, the error names the files
expected under ``data.root`` and where to get them by hand.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

from rnnlab.data.download import TIMEOUT_S, ChecksumError, Source, _fetch, verify


def _verified(path: Path, source: Source) -> bool:
    try:
        verify(path, source)
        return True
    except ChecksumError:
        return False


def fetch_files(files: dict[str, tuple[Source, ...]], root: str | Path, homepage: str,
                timeout: float = TIMEOUT_S) -> Path:
    """Make ``root/<name>`` a verified copy of each file; files already there and verified are kept."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"data.root={root} is a file, not a folder")
    root.mkdir(parents=True, exist_ok=True)
    for name, sources in files.items():
        target = root / name
        if target.is_file():
            if any(_verified(target, s) for s in sources):
                continue
            raise ChecksumError(f"{target} exists but is not the official file ({sources[0].url}): "
                                "remove it to download again")
        failures, mismatched = [], False
        for source in sources:
            try:
                _fetch(source, target, timeout)
                break
            except ChecksumError as error:
                failures.append(str(error))
                mismatched = True
            except (OSError, urllib.error.URLError) as error:
                failures.append(f"{source.url}: {getattr(error, 'reason', error)}")
        else:
            by_hand = (f"put {', '.join(files)} under data.root={root} by hand, from "
                       f"{' or '.join(s.url.rsplit('/', 1)[0] + '/' for s in sources)} (see {homepage})")
            error_type = ChecksumError if mismatched else ConnectionError
            raise error_type(f"could not download {name} ({'; '.join(failures)}): "
                             f"{'' if mismatched else 'offline? '}{by_hand}")
    return root
