"""Cine loops: read a short video (mp4, avi, ...) or a multi-frame DICOM into frames, bounded in frames and duration,
and write overlay videos (WebM/VP8, which browsers play). OpenCV (FFmpeg) decodes and encodes the videos, pydicom
the DICOM files; `prepare` reads videos frame by frame through `iter_video`.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from trus_hf.video import read_cine, write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "loop.webm"
    >>> _ = write_video(path, [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)], fps=10)
    >>> cine = read_cine(path)
    >>> len(cine.frames), cine.frames[0].shape
    (5, (48, 64, 3))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .arrays import MAX_PIXELS
from .fileio import DICOM_EXTENSIONS, read_dicom_frames

__all__ = ["VIDEO_EXTENSIONS", "Cine", "iter_video", "read_cine", "write_video"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".webm")


@dataclass
class Cine:
    """Frames (H, W) or (H, W, 3), uint8 or uint16, and the frame rate."""

    frames: list[np.ndarray]
    fps: float
    source: str

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps if self.fps else 0.0


def iter_video(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) of every decodable frame of a video file; `ValueError` naming the file when it
    cannot be opened or holds no frame."""
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path.name}: cannot open or decode this video (expected {', '.join(VIDEO_EXTENSIONS)})")
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise ValueError(f"{path.name}: the video has no decodable frames")


def _dicom_fps(ds) -> float:
    frame_time = ds.get("FrameTime")  # ms between frames
    if frame_time:
        try:
            return 1000.0 / float(frame_time)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    rate = ds.get("CineRate") or ds.get("RecommendedDisplayFrameRate")
    return float(rate) if rate else 20.0


def read_cine(path: str | Path, max_frames: int = 600, max_seconds: float = 60.0, max_pixels: int = MAX_PIXELS) -> Cine:
    """All frames of a video or multi-frame DICOM. More than ``max_frames`` frames, more than ``max_seconds`` or
    frames larger than ``max_pixels`` raise a `ValueError` that says which limit, by how much (never a silent cut)."""
    path = Path(path)
    is_dicom = path.suffix.lower() in DICOM_EXTENSIONS
    if not is_dicom and path.is_file():
        with open(path, "rb") as f:
            is_dicom = f.read(132)[128:132] == b"DICM"
    if is_dicom:
        frames, ds = read_dicom_frames(path)
        fps = _dicom_fps(ds)
        frames = list(frames)
    else:
        cap = cv2.VideoCapture(str(path))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) if cap.isOpened() else 0.0
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        fps = fps if 0 < fps < 1000 else 20.0
        if declared > max_frames or declared / fps > max_seconds:
            raise ValueError(
                f"{path.name}: {declared} frames ({declared / fps:.1f} s) exceed the limit of "
                f"{max_frames} frames / {max_seconds:g} s"
            )
        frames = []
        for _, frame in iter_video(path):
            frames.append(frame)
            if len(frames) > max_frames:
                break
    name = path.name
    if not frames:
        raise ValueError(f"{name}: no frames")
    if len(frames) > max_frames or len(frames) / fps > max_seconds:
        raise ValueError(
            f"{name}: {len(frames)}{'+' if len(frames) > max_frames else ''} frames "
            f"({len(frames) / fps:.1f} s) exceed the limit of {max_frames} frames / {max_seconds:g} s"
        )
    h, w = frames[0].shape[:2]
    if h * w > max_pixels:
        raise ValueError(f"{name}: {w}x{h} frames exceed the limit of {max_pixels} pixels")
    return Cine(frames, fps, name)


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write RGB uint8 frames as a WebM (VP8) video that browsers play."""
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), float(max(1.0, min(fps, 120.0))), (w, h))
    if not writer.isOpened():
        raise ValueError(f"cannot write {path.name}: OpenCV has no VP8 encoder here")
    try:
        for frame in frames:
            rgb = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
