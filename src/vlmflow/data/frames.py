"""Frame sampling and PyAV decoding. Rules: "segments" (the mid-points of equal segments of the
clip, as the MVBench/TVBench evaluation loaders do: the paper's rule), "linspace" (VideoLLaMA3's
package loader with fps=None: every frame of the clip decoded, `linspace(0, n-1, 8)` kept) and
"fps1" (VideoLLaMA3's registered processor, which samples 1 frame per second first),
"lvb_stride" (LongVideoBench's rule in the paper's loader: frames at a fixed stride from frame 0),
and the rules of transformers' video processors: "hf_uniform" (the default `sample_frames` of
LLaVA-NeXT-Video-hf and LLaVA-OneVision-hf), "hf_centered" (InternVL-hf's, shifted half a step)
and "fps2" (Qwen3-VL's: 2 frames per second, so the count follows the clip's length); with the
frames' times as VideoLLaMA3's released loader states them (`frame_times`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    numpy's linspace, as VideoLLaMA3's loader keeps them; its clip, `released_clip`)."""
    start, end = released_clip(n_frames, fps, bounds)
    return [start + int(i) for i in np.linspace(0, end - start, n, dtype=int)]


def released_clip(n_frames: int, fps: float, bounds: tuple[float, float] | None) -> tuple[int, int]:
    """First and last frame of a clip as VideoLLaMA3's released loader trims it: the whole video; the
    frames whose time lies in [start, end) (its ffmpeg trim); or, for a clip under 1 s, its frame
    reader's [int(start * fps) - 1, int(end * fps) - 1]."""
    if bounds is None:
        return clip_range(n_frames, fps, None)
    s, e = bounds
    if e - s < 1:
        first, last = max(int(s * fps) - 1, 0), min(int(e * fps) - 1, n_frames - 1)
    else:
        first, last = max(0, math.ceil(s * fps - 1e-6)), min(math.ceil(e * fps - 1e-6) - 1, n_frames - 1)
    if last < first:
        raise ValueError(f"clip bounds {bounds} s select no frame of a {n_frames}-frame video at {fps} fps")
    return first, last


def one_per_second_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """One frame per second from the clip start (the processor VideoLLaMA3's evaluation registers:
    fps 1), `n` of them kept by linspace when there are more; a clip too short for `n` is an error
    (the paper's layouts hold 8 frames)."""
    ticks = _ticks(n_frames, fps, bounds)
    if len(ticks) < n:
        start, end = released_clip(n_frames, fps, bounds)
        raise ValueError(
            f"clip of {(end - start + 1) / fps:.1f} s gives {len(ticks)} frames at 1 fps, fewer than "
            f"the {n} the model takes (frame_sampling fps1)"
        )
    return [ticks[int(i)] for i in np.linspace(0, len(ticks) - 1, n, dtype=int)]


def _ticks(n_frames: int, fps: float, bounds: tuple[float, float] | None) -> list[int]:
    """The frame nearest each whole second from the clip start (ffmpeg's fps filter)."""
    start, end = released_clip(n_frames, fps, bounds)
    return [start + int(round(k * fps)) for k in range(int((end - start) / fps) + 1)]


def lvb_stride_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """LongVideoBench's rule in the paper's loader: k = min(n, int(duration)) frames from frame 0 at a
    stride of int(duration * fps / k), padded to `n` with the last index. The duration is the
    record's (the clip bounds [0, duration] its loader gives), else the file's; an index past the
    file's last frame reads the last frame."""
    duration = n_frames / fps if bounds is None else bounds[1] - bounds[0]
    k = min(n, int(duration))
    if k < 1:
        raise ValueError(f"a clip of {duration:.2f} s has no whole second for LongVideoBench's frame rule")
    stride = int(duration * fps / k)
    idx = [min(i * stride, n_frames - 1) for i in range(k)]
    return idx + [idx[-1]] * (n - k)


def hf_uniform_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """transformers' default video `sample_frames` with `num_frames=n` (LLaVA-NeXT-Video-hf,
    LLaVA-OneVision-hf): frame k * total // n of the clip's `total` frames, from its first frame."""
    start, end = clip_range(n_frames, fps, bounds)
    total = end - start + 1
    if n > total:
        raise ValueError(f"a clip of {total} frames cannot give {n} frames (frame_sampling hf_uniform)")
    return [start + k * total // n for k in range(n)]


def hf_centered_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """InternVL-hf's video `sample_frames` with `num_frames=n` (`initial_shift` True): the integer part
    of (k + 1/2) * total / n, the middle of each of n equal steps over the clip's `total` frames."""
    start, end = clip_range(n_frames, fps, bounds)
    total = end - start + 1
    if n > total:
        raise ValueError(f"a clip of {total} frames cannot give {n} frames (frame_sampling hf_centered)")
    step = total / n
    return [start + int(step / 2 + k * step) for k in range(n)]


def fps2_indices(
    n_frames: int, fps: float, n: int = 8, bounds: tuple[float, float] | None = None
) -> list[int]:
    """Qwen3-VL's video `sample_frames` at its default 2 frames per second: int(seconds x 2) frames of
    the clip, at least 4 (its `min_frames`), at most `n` (here its `max_frames`) and the clip's
    frames, at the rounded points of linspace(first, last)."""
    start, end = clip_range(n_frames, fps, bounds)
    total = end - start + 1
    k = min(max(int(total / fps * 2), 4), n, total)
    return [start + int(i) for i in np.linspace(0, total - 1, k).round().astype(int)]


class ShortClip(ValueError):
    """A clip with fewer frames than the model takes."""


SAMPLINGS = {
    "segments": segment_midpoints,
    "linspace": linspace_indices,
    "fps1": one_per_second_indices,
    "lvb_stride": lvb_stride_indices,
    "hf_uniform": hf_uniform_indices,
    "hf_centered": hf_centered_indices,
    "fps2": fps2_indices,
}


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


@dataclass(frozen=True)
class VideoClock:
    """What a video's container says about time (ffprobe's fields): the video stream's start time and
    the container's duration, in seconds."""

    fps: float
    n_frames: int
    start_time: float = 0.0
    duration: float | None = None  # None: n_frames / fps


def frame_times(
    sampling: str, idx: list[int], clock: VideoClock, bounds: tuple[float, float] | None = None
) -> list[float]:
    """The time of each sampled frame as VideoLLaMA3's released loader states it in the prompt, in the
    value type it gives the chat template (whose `round(1)` is then numpy's for numpy floats):
    - "linspace" (its ffmpeg `load_video`, fps=None): numpy float64 times spread evenly over the clip,
      `linspace(start, start + duration, frames of the clip)` taken at the sampled frames;
    - "fps1" (the same loader at fps 1): numpy float64 `start + k` seconds for the k-th tick;
    - "segments", "lvb_stride", "hf_uniform", "hf_centered" and "fps2" (no released VideoLLaMA3
      loader uses them; its frame-index reader's rule, which is also Qwen3-VL's), and any clip bounded
      to under 1 s (where the released loader switches to that reader): index / fps, Python floats.
    `start` and `duration` are the stream's start time and the container's duration, trimmed to the
    clip bounds the way the released loader trims them."""
    fps = clock.fps
    short = bounds is not None and bounds[1] - bounds[0] < 1
    if sampling in ("segments", "lvb_stride", "hf_uniform", "hf_centered", "fps2") or short:
        return [i / fps for i in idx]
    duration = clock.n_frames / fps if clock.duration is None else clock.duration
    start = clock.start_time
    if bounds is not None:
        start = max(clock.start_time, bounds[0])
        duration = min(duration - (start - bounds[0]), bounds[1] - start)
    if sampling == "linspace":
        first, last = released_clip(clock.n_frames, fps, bounds)
        spread = np.linspace(start, start + duration, last - first + 1)
        return [spread[i - first] for i in idx]
    if sampling == "fps1":
        ticks = _ticks(clock.n_frames, fps, bounds)
        seconds = np.arange(start, start + duration + 1, 1.0)
        return [seconds[ticks.index(i)] for i in idx]
    raise ValueError(f"frame sampling {sampling!r}: expected one of {sorted(SAMPLINGS)}")


def read_frames(
    path: str | Path,
    n: int = 8,
    bounds: tuple[float, float] | None = None,
    with_times: bool = False,
    sampling: str = "segments",
    repeats: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[float]]:
    """Decode the frames a sampling rule picks (`n`; "fps2": at most `n`) -> uint8 RGB [n, H, W, 3],
    and with `with_times` their times in seconds as VideoLLaMA3's released loader states them
    (`frame_times`). A clip whose frames would repeat is an error (`ShortClip`) unless `repeats`
    allows it."""
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
            clock = VideoClock(
                fps,
                n_frames,
                float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0,
                container.duration / av.time_base if container.duration else None,
            )
            idx = SAMPLINGS[sampling](n_frames, fps, n, bounds)
            if len(set(idx)) < len(idx) and not repeats:
                raise ShortClip(
                    f"clip of {path} has {len(set(idx))} distinct frames, fewer than the {len(idx)} asked "
                    "(its frames would repeat); set the dataset's `short_clips: repeat` to use it so"
                )
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
    return (frames, frame_times(sampling, idx, clock, bounds)) if with_times else frames
