"""Frame sampling (segment mid-points inside the clip bounds, as the MVBench/TVBench evaluation
loaders do) and PyAV decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def segment_midpoints(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """Indices of `n` frames at the mid-points of `n` equal segments of the clip.

    With bounds (start, end) in seconds the clip is [round(start*fps), min(round(end*fps), n_frames-1)],
    else the whole video. Frame k = int(start + seg/2 + round(seg*k)), seg = (end-start)/n, with
    numpy's half-to-even rounding, as in the MVBench/TVBench evaluation loaders.
    """
    if n_frames < 1:
        raise ValueError("video has no frames")
    start, end = (
        (0, n_frames - 1)
        if bounds is None
        else (
            max(0, int(np.round(bounds[0] * fps))),
            min(int(np.round(bounds[1] * fps)), n_frames - 1),
        )
    )
    if end < start:
        raise ValueError(f"clip bounds {bounds} s select no frame of a {n_frames}-frame video at {fps} fps")
    seg = (end - start) / n
    return [int(start + seg / 2 + np.round(seg * k)) for k in range(n)]


def read_frames(
    path: str | Path, n: int = 8, bounds: tuple[float, float] | None = None, with_times: bool = False
) -> np.ndarray | tuple[np.ndarray, list[float]]:
    """Decode the `n` sampled frames of a video -> uint8 RGB [n, H, W, 3], and with `with_times`
    their times in seconds (index / frame rate), which VideoLLaMA3's prompt states."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n_frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            if n_frames < 1 or fps <= 0:
                raise ValueError(f"video {path} has no frames or no frame rate")
            idx = segment_midpoints(n_frames, fps, n, bounds)
            container.seek(0)
            wanted, kept = set(idx), {}
            for i, frame in enumerate(container.decode(stream)):  # stop once the last index is read
                if i in wanted:
                    kept[i] = frame.to_ndarray(format="rgb24")
                if i >= idx[-1]:
                    break
    except (av.error.FFmpegError, IndexError) as err:
        raise ValueError(f"cannot decode video {path}: {err}") from err
    missing = [i for i in idx if i not in kept]
    if missing:
        raise ValueError(f"video {path} is shorter than its header says: frames {missing} missing")
    frames = np.stack([kept[i] for i in idx])
    return (frames, [i / fps for i in idx]) if with_times else frames
