"""Frame sampling and PyAV decoding. Rules: "segments" (the mid-points of equal segments of the
clip, as the MVBench/TVBench evaluation loaders do: the paper's rule), "linspace" (VideoLLaMA3's
package loader with fps=None: every frame of the clip decoded, `linspace(0, n-1, 8)` kept) and
"fps1" (VideoLLaMA3's registered processor, which samples 1 frame per second first)."""

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
    start, end = clip_range(n_frames, fps, bounds)
    seg = (end - start) / n
    return [int(start + seg / 2 + np.round(seg * k)) for k in range(n)]


def linspace_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """Indices of `n` frames spread evenly over the clip, first and last included (integer part of
    numpy's linspace, as VideoLLaMA3's loader keeps them)."""
    start, end = clip_range(n_frames, fps, bounds)
    return [start + int(i) for i in np.linspace(0, end - start, n, dtype=int)]


def one_per_second_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """One frame per second from the clip start (the processor VideoLLaMA3's evaluation registers:
    fps 1), `n` of them kept by linspace when there are more; a clip too short for `n` is an error
    (the paper's layouts hold 8 frames)."""
    start, end = clip_range(n_frames, fps, bounds)
    ticks = [start + int(round(k * fps)) for k in range(int((end - start) / fps) + 1)]
    if len(ticks) < n:
        raise ValueError(
            f"clip of {(end - start + 1) / fps:.1f} s gives {len(ticks)} frames at 1 fps, fewer than "
            f"the {n} the model takes (frame_sampling fps1)"
        )
    return [ticks[int(i)] for i in np.linspace(0, len(ticks) - 1, n, dtype=int)]


SAMPLINGS = {"segments": segment_midpoints, "linspace": linspace_indices, "fps1": one_per_second_indices}


def clip_range(n_frames: int, fps: float, bounds: tuple[float, float] | None) -> tuple[int, int]:
    """First and last frame index of the clip: [round(start*fps), min(round(end*fps), n_frames-1)],
    or the whole video."""
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
    return start, end


def read_frames(
    path: str | Path,
    n: int = 8,
    bounds: tuple[float, float] | None = None,
    with_times: bool = False,
    sampling: str = "segments",
) -> np.ndarray | tuple[np.ndarray, list[float]]:
    """Decode the `n` frames a sampling rule picks -> uint8 RGB [n, H, W, 3], and with `with_times`
    their times in seconds (index / frame rate), which VideoLLaMA3's prompt states."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"frame sampling {sampling!r}: expected one of {sorted(SAMPLINGS)}")
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
            idx = SAMPLINGS[sampling](n_frames, fps, n, bounds)
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
