"""Serving models to people you do not know: which model sources a server accepts, and a bounded cache of loaded
pipelines.

`SourcePolicy` decides what a typed model box may reach: local folders only under configured roots (any folder when
the server listens on loopback only, none by default otherwise), Hub repositories only when allowed, within a size
limit per download and a number of downloads per hour, into a cache directory that is kept under a disk budget
(least recently used first out). Its errors (`ModelSourceError`) never show server paths, and say the same for a
folder that exists and one that does not.

`ModelCache` keeps the loaded pipelines (LRU, bounded), one load per model at a time without blocking the others,
and exports PyTorch models to ONNX once when the ONNX Runtime backend is asked for.

Example:
    >>> from trus_hf.serving import SourcePolicy
    >>> policy = SourcePolicy(local_roots=[], allow_hub=False)
    >>> try:
    ...     policy.resolve("/etc")
    ... except ValueError as exc:
    ...     print(exc)
    local model folders are not accepted by this server
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelCache", "ModelSourceError", "SourcePolicy", "is_loopback", "safe_message"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@%+~-]+){2,}[\\/]?")
_MODEL_FILES = ("*.json", "*.safetensors", "*.onnx", "*.md")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "")


class ModelSourceError(ValueError):
    """A model source this server will not or cannot load; the message is safe to show to any visitor."""


def safe_message(text: str) -> str:
    """``text`` with every absolute path replaced by its last component (no server path reaches a visitor)."""
    return _PATH.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "<path>", str(text))


def is_loopback(server_name: str | None) -> bool:
    return (server_name or "").strip() in LOOPBACK or (server_name or "").startswith("127.")


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


@dataclass
class SourcePolicy:
    """What a served model box may load (see the module docstring).

    Args:
        local_roots: folders under which local model folders are accepted; None accepts any folder (a server
            reachable from this machine only), ``[]`` none.
        allow_hub: accept Hub model IDs.
        max_download_mb: largest download (model files only) of one Hub repository.
        max_downloads_per_hour: Hub downloads (of repositories not cached yet) per rolling hour.
        cache_dir: where downloads and ONNX exports go.
        max_cache_mb: disk budget of ``cache_dir``; least recently used entries are removed beyond it.
        max_exports: ONNX exports kept.
    """

    local_roots: list[Path] | None = None
    allow_hub: bool = True
    max_download_mb: float = 1000.0
    max_downloads_per_hour: int = 30
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "trus-hf-cache")
    max_cache_mb: float = 4000.0
    max_exports: int = 8
    _downloads: deque = field(default_factory=deque, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_env(cls, server_name: str | None = None) -> SourcePolicy:
        """From ``TRUS_HF_MODEL_ROOTS`` (folders separated by ``os.pathsep``), ``TRUS_HF_ALLOW_HUB`` (1/0),
        ``TRUS_HF_MAX_DOWNLOAD_MB``, ``TRUS_HF_CACHE`` and ``TRUS_HF_MAX_CACHE_MB``. Without roots: any local folder
        on a loopback server, none on any other address."""
        server_name = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1") if server_name is None else server_name
        roots_env = os.environ.get("TRUS_HF_MODEL_ROOTS")
        if roots_env is not None:
            roots: list[Path] | None = [Path(r).expanduser() for r in roots_env.split(os.pathsep) if r.strip()]
        else:
            roots = None if is_loopback(server_name) else []
        kwargs: dict[str, Any] = {
            "local_roots": roots,
            "allow_hub": os.environ.get("TRUS_HF_ALLOW_HUB", "1").strip() not in ("0", "false"),
        }
        if os.environ.get("TRUS_HF_MAX_DOWNLOAD_MB"):
            kwargs["max_download_mb"] = float(os.environ["TRUS_HF_MAX_DOWNLOAD_MB"])
        if os.environ.get("TRUS_HF_MAX_CACHE_MB"):
            kwargs["max_cache_mb"] = float(os.environ["TRUS_HF_MAX_CACHE_MB"])
        if os.environ.get("TRUS_HF_CACHE"):
            kwargs["cache_dir"] = Path(os.environ["TRUS_HF_CACHE"])
        return cls(**kwargs)

    @property
    def onnx_dir(self) -> Path:
        return Path(self.cache_dir) / "onnx"

    # ------------------------------------------------------------------------------------------------ sources
    def _is_local(self, text: str) -> bool:
        if text.startswith(("/", ".", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text) or not _HUB_ID.match(text):
            return True
        return self.local_roots is None and Path(text).is_dir()  # a relative folder on a developer's server

    def resolve(self, text: str, revision: str | None = None) -> Path:
        """The local folder of a typed model source: an accepted local folder, or a Hub repository downloaded within
        the limits. `ModelSourceError` otherwise."""
        text = (text or "").strip()
        if not text:
            raise ModelSourceError("enter a Hub model ID (org/name) or a local model folder")
        if self._is_local(text):
            return self._local(text)
        return self._hub(text, revision)

    def _local(self, text: str) -> Path:
        if self.local_roots is not None and not self.local_roots:
            raise ModelSourceError("local model folders are not accepted by this server")
        path = Path(text).expanduser()
        if self.local_roots is None:
            if not path.is_dir():
                raise ModelSourceError(f"{text}: no such model folder")
            return path
        resolved = path.resolve()
        for root in self.local_roots:
            root = root.resolve()
            if resolved == root or root in resolved.parents:
                if not resolved.is_dir():
                    raise ModelSourceError(
                        f"no model folder {resolved.relative_to(root)} in the model folders of this server"
                    )
                return resolved
        raise ModelSourceError("this folder is not one of the model folders this server accepts")

    def _hub(self, repo_id: str, revision: str | None) -> Path:
        if not self.allow_hub:
            raise ModelSourceError("Hub models are not accepted by this server")
        from huggingface_hub import HfApi, snapshot_download

        hub_cache = Path(self.cache_dir) / "hub"
        try:
            # already downloaded: no new traffic, no quota
            folder = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    cache_dir=hub_cache,
                    allow_patterns=list(_MODEL_FILES),
                    local_files_only=True,
                )
            )
            os.utime(folder)
            return folder
        except Exception:
            pass
        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except Exception as exc:
            raise ModelSourceError(f"cannot load model {repo_id!r} from the Hub ({exc.__class__.__name__})") from exc
        files = [s for s in info.siblings or [] if any(Path(s.rfilename).match(p) for p in _MODEL_FILES)]
        size_mb = sum((s.size or 0) for s in files) / 2**20
        if size_mb > self.max_download_mb:
            raise ModelSourceError(
                f"{repo_id}: its model files ({size_mb:.0f} MB) exceed this server's download "
                f"limit of {self.max_download_mb:g} MB"
            )
        with self._lock:
            now = time.time()
            while self._downloads and now - self._downloads[0] > 3600:
                self._downloads.popleft()
            if len(self._downloads) >= self.max_downloads_per_hour:
                raise ModelSourceError(
                    f"this server downloads at most {self.max_downloads_per_hour} new Hub models "
                    f"an hour; try again later"
                )
            self._downloads.append(now)
        try:
            folder = Path(
                snapshot_download(repo_id, revision=revision, cache_dir=hub_cache, allow_patterns=list(_MODEL_FILES))
            )
        except Exception as exc:
            raise ModelSourceError(f"cannot download model {repo_id!r} ({exc.__class__.__name__})") from exc
        self.evict(keep=folder)
        return folder

    # ------------------------------------------------------------------------------------------------ disk budget
    def evict(self, keep: Path | list[Path] | None = None) -> list[Path]:
        """Remove the least recently used downloads and exports while ``cache_dir`` is over its budget, and exports
        beyond ``max_exports``; ``keep`` (a folder or several, and what they lie in) stays."""
        removed = []
        entries = [p for p in (Path(self.cache_dir) / "hub").glob("models--*") if p.is_dir()]
        exports = [p for p in self.onnx_dir.glob("*") if p.is_dir()]
        kept = [] if keep is None else [keep] if isinstance(keep, Path) else list(keep)
        keep_parents = {p for k in kept for p in (k, *k.parents)}
        for old in sorted(exports, key=lambda p: p.stat().st_mtime)[: max(0, len(exports) - self.max_exports)]:
            if old not in keep_parents:
                shutil.rmtree(old, ignore_errors=True)
                removed.append(old)
        candidates = sorted(
            (p for p in entries + exports if p.exists() and p not in keep_parents), key=lambda p: p.stat().st_mtime
        )
        total = sum(_size_mb(p) for p in entries + exports if p.exists())
        while total > self.max_cache_mb and candidates:
            old = candidates.pop(0)
            total -= _size_mb(old)
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
        return removed


class ModelCache:
    """Pipelines loaded once and kept (LRU, bounded): the bundled models by name, other sources through the policy.

    A model being loaded (or exported to ONNX) holds only its own lock: other users' cached models keep answering
    meanwhile, and concurrent requests for one model wait for one load."""

    def __init__(self, bundled: dict[str, Path], policy: SourcePolicy | None = None, max_models: int = 4):
        self.bundled = dict(bundled)
        self.policy = policy or SourcePolicy()
        self.max_models = max_models
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()  # guards _cache and _loading, never held while a model loads
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, source: str, backend: str = "torch") -> Any:
        """The pipeline of a bundled model name, or of a source the policy accepts, on ``backend``."""
        key = (source, backend)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._cache:  # loaded by the request we waited for
                    return self._cache[key]
            try:
                pipe = self._load(source, backend)
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:  # cached and no longer loading in one step: a new request never loads it twice
                self._cache[key] = pipe
                self._loading.pop(key, None)
                if len(self._cache) > self.max_models:
                    self._cache.popitem(last=False)
            return pipe

    def _load(self, source: str, backend: str) -> Any:
        from .export import ensure_onnx
        from .pipeline import SegmentationPipeline, kfold_members

        folder = self.bundled.get(source) or self.policy.resolve(source)
        try:
            members = kfold_members(folder) or [folder]  # a k-fold run's folder: its fold models as one ensemble
            if backend == "onnx":
                members = [ensure_onnx(m, self.policy.onnx_dir) for m in members]
                self.policy.evict(keep=members)
            return SegmentationPipeline.from_pretrained([str(m) for m in members], backend=backend, device="cpu")
        except ModelSourceError:
            raise
        except Exception as exc:  # anything that stops a model loading becomes a message without server paths
            raise ModelSourceError(safe_message(f"cannot load model {source!r} ({backend}): {exc}")) from exc
