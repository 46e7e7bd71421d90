"""Fetch an official archive, verify its checksum, unpack it: for users who have a network.

Nothing here runs unless ``data.download=true``. A download goes to a temporary name beside the
archive and is renamed only once its checksum matches; unpacking goes to a temporary folder that
is renamed to ``data.root`` only once complete. Whatever fails, no partial file or folder is left.

Every checksum below is copied from a public, maintained source named next to it; none was
computed here (this code was written without network access). SHA-256 wherever one is documented;
MD5 + size only where nothing stronger is (the fast.ai mirror of AG News), and said so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 10.0  # per connection attempt and per read: offline machines fail at once, not after minutes
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One place an archive can be fetched from, with the checksum documented for that exact file."""

    url: str
    sha256: str | None = None
    md5: str | None = None  # only where no SHA-256 is documented
    size: int | None = None  # bytes
    checksum_from: str = ""  # where the checksum was published

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.url}: a download source needs a documented checksum")


@dataclass(frozen=True)
class Archive:
    """An official archive: its file name, the folder it unpacks to, where to get it."""

    filename: str  # e.g. aclImdb_v1.tar.gz
    folder: str  # the top-level folder inside, e.g. aclImdb
    sources: tuple[Source, ...]  # tried in order
    homepage: str

    @property
    def urls(self) -> str:
        return " or ".join(s.url for s in self.sources)


class ChecksumError(ValueError):
    pass


def _digests(path: Path) -> tuple[str, str, int]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return sha.hexdigest(), md5.hexdigest(), size


def verify(path: Path, source: Source) -> None:
    """Raise :class:`ChecksumError` unless ``path`` is the file ``source`` documents."""
    sha, md5, size = _digests(path)
    if source.size is not None and size != source.size:
        raise ChecksumError(f"{source.url}: got {size} bytes, expected {source.size}")
    if source.sha256 is not None and sha != source.sha256:
        raise ChecksumError(f"{source.url}: SHA-256 {sha} does not match the recorded {source.sha256}")
    if source.sha256 is None and md5 != source.md5:
        raise ChecksumError(f"{source.url}: MD5 {md5} does not match the recorded {source.md5}")


def _matches_any(path: Path, sources: tuple[Source, ...]) -> bool:
    for source in sources:
        try:
            verify(path, source)
            return True
        except ChecksumError:
            pass
    return False


def _fetch(source: Source, target: Path, timeout: float) -> None:
    """Download ``source`` to ``target`` through a temporary name; verified before the rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, CHUNK)
        verify(tmp, source)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _unpack(archive_path: Path, folder: str, root: Path) -> None:
    """Unpack into a temporary folder beside ``root``, then rename its ``folder`` to ``root``."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.unpack-", dir=root.parent))
    try:
        if zipfile.is_zipfile(archive_path):
            with zipfile.ZipFile(archive_path) as z:
                z.extractall(tmp)  # zipfile drops absolute paths and '..'
        else:
            with tarfile.open(archive_path) as t:
                if hasattr(tarfile, "data_filter"):
                    t.extractall(tmp, filter="data")  # refuses links and paths that leave tmp
                else:  # Python before 3.10.12 / 3.11.4: check the paths ourselves
                    inside = tmp.resolve()
                    for m in t.getmembers():
                        if m.issym() or m.islnk() or not (tmp / m.name).resolve().is_relative_to(inside):
                            raise tarfile.TarError(f"{archive_path}: {m.name} would leave the unpack folder")
                    t.extractall(tmp)
        unpacked = tmp / folder
        if not unpacked.is_dir():
            raise ValueError(f"{archive_path} does not hold the folder {folder}/ the official archive has")
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # an empty folder made by hand is replaced
        os.replace(unpacked, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(archive: Archive, root: str | Path, cache_dir: str | Path | None = None, expected: str = "",
             timeout: float = TIMEOUT_S) -> Path:
    """Make ``root`` hold the unpacked ``archive``: fetch it into ``cache_dir`` (default: root's parent)
    unless a verified copy is there, then unpack. ``expected`` names the files, for the error messages."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"data.root={root} is a file, not a folder")
    if root.is_dir() and any(root.iterdir()):
        raise ValueError(f"data.root={root} exists but does not hold {expected}: not downloading over it; "
                         f"empty it or point data.root elsewhere")
    cache = Path(cache_dir) if cache_dir else root.parent
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / archive.filename
    if target.is_file() and not _matches_any(target, archive.sources):
        target.unlink()  # a stale or foreign file under the archive's name: fetch again
    if not target.is_file():
        mismatches, unreachable = [], []
        for source in archive.sources:
            try:
                _fetch(source, target, timeout)
                break
            except ChecksumError as error:
                mismatches.append(str(error))
            except (OSError, urllib.error.URLError) as error:  # URLError, timeouts, refused connections
                unreachable.append(f"{source.url}: {getattr(error, 'reason', error)}")
        else:
            by_hand = (f"put {expected} under data.root={root} by hand: unpack {archive.filename} from "
                       f"{archive.urls} (see {archive.homepage})")
            if mismatches:
                raise ChecksumError(f"download of {archive.filename} failed verification and was removed "
                                    f"({'; '.join(mismatches + unreachable)}); {by_hand}")
            raise ConnectionError(f"could not download {archive.filename} ({'; '.join(unreachable)}): "
                                  f"offline? {by_hand}")
    _unpack(target, archive.folder, root)
    return root
