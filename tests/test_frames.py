import numpy as np
import pytest

from vlmflow.data import synthetic
from vlmflow.data.frames import (
    VideoClock,
    fps2_indices,
    frame_times,
    hf_centered_indices,
    hf_uniform_indices,
    linspace_indices,
    one_per_second_indices,
    read_frames,
    segment_midpoints,
)
from vlmflow.models.videollama3 import VideoLlama3Adapter


def spec_indices(n_frames, fps, n, bounds):
    """The MVBench/TVBench loaders' sampling written out literally (numpy's half-to-even rounding)."""
    start, end = (-100000, 100000) if bounds is None else bounds
    start_idx = max(0, round(start * fps))
    end_idx = min(round(end * fps), n_frames - 1)
    seg = (end_idx - start_idx) / n
    return [int(start_idx + seg / 2 + np.round(seg * k)) for k in range(n)]


@pytest.mark.parametrize(
    "n_frames,fps,bounds",
    [
        (16, 8, None),
        (24, 8, (0.5, 2.5)),
        (300, 30, None),
        (301, 29.97, (1.25, 7.5)),
        (9, 8, None),
        (250, 25, (0, 3)),
    ],
)
def test_segment_midpoints_follow_spec(n_frames, fps, bounds):
    assert segment_midpoints(n_frames, fps, 8, bounds) == spec_indices(n_frames, fps, 8, bounds)


def test_half_to_even_rounding():
    # 21 frames: seg = 20/8 = 2.5, frame k = int(1.25 + round(2.5*k)); the ties 2.5, 7.5, 12.5, 17.5 round
    # to 2, 8, 12, 18 (half to even), not 3, 8, 13, 18 (half up: [1, 4, 6, 9, 11, 14, 16, 19])
    assert segment_midpoints(21, 8, 8) == [1, 3, 6, 9, 11, 13, 16, 19]
    # bounds (2.5 s, 22.5 s) at 1 fps: start = round(2.5) = 2, end = round(22.5) = 22 (half up: 3 and 23),
    # seg = 2.5 as above, so the same frames shifted by 2 (half up everywhere: [4, 7, 9, 12, 14, 17, 19, 22])
    assert segment_midpoints(30, 1, 8, (2.5, 22.5)) == [3, 5, 8, 11, 13, 15, 18, 21]


def test_bounds_selecting_nothing_is_an_error():
    with pytest.raises(ValueError, match="select no frame"):
        segment_midpoints(10, 8, 8, (5.0, 6.0))


def test_read_frames_returns_the_sampled_frames(tmp_path):
    n = 24
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(n) * 10)[:, None, None]  # frame index coded in the red channel
    synthetic.write_video(tmp_path / "v.mp4", frames, fps=8)
    got = read_frames(tmp_path / "v.mp4", 8, (0.5, 2.5))
    idx = segment_midpoints(n, 8, 8, (0.5, 2.5))
    assert got.shape == (8, 32, 32, 3)
    assert np.abs(got[..., 0].mean(axis=(1, 2)) - np.array(idx) * 10).max() < 2


def test_missing_and_corrupt_videos_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_frames(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="bad.mp4"):
        read_frames(bad)


@pytest.mark.parametrize("n_frames,bounds", [(100, None), (37, None), (240, (2.0, 6.0))])
def test_linspace_sampling_spans_the_clip_first_to_last(n_frames, bounds):
    """VideoLLaMA3's loader: every frame of the clip decoded, np.linspace(0, n-1, 8, dtype=int) kept."""
    fps = 24.0
    idx = linspace_indices(n_frames, fps, 8, bounds)
    start, end = (0, n_frames - 1) if bounds is None else (48, 143)  # the frames in [2 s, 6 s)
    assert idx[0] == start and idx[-1] == end and len(idx) == 8
    assert idx == [start + int(np.floor(k * (end - start) / 7)) for k in range(8)]
    assert idx != segment_midpoints(n_frames, fps, 8, bounds)


def test_read_frames_under_each_rule_gives_frames_and_their_times(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 3 * i, np.uint8) for i in range(80)])  # 10 s at 8 fps
    synthetic.write_video(tmp_path / "v.mp4", frames, fps=8)
    rules = [
        ("segments", segment_midpoints, lambda idx: [i / 8 for i in idx]),
        ("linspace", linspace_indices, lambda idx: list(np.linspace(0.0, 10.0, 80)[idx])),
        ("fps1", one_per_second_indices, lambda idx: [i / 8 for i in idx]),  # ticks at whole seconds
    ]
    for rule, pick, released_times in rules:
        got, times = read_frames(tmp_path / "v.mp4", 8, None, with_times=True, sampling=rule)
        idx = pick(80, 8.0, 8)
        assert times == pytest.approx(released_times(idx), abs=1e-12)
        assert np.abs(got.reshape(8, -1).mean(1) - 3 * np.array(idx)).max() < 3  # the picked frames
    with pytest.raises(ValueError, match="frame sampling"):
        read_frames(tmp_path / "v.mp4", 8, sampling="fps3")


def released_template(t) -> str:
    """A frame's time through the released chat template's own expression, rendered by jinja2."""
    import jinja2

    return jinja2.Environment().from_string("{{ t | round(1) | string }}").render(t=t)


def test_the_issue_example_16_frames_2_seconds():
    """16 frames at 8 fps (2.0 s): the released loader spreads the times over the duration."""
    clock = VideoClock(8.0, 16, 0.0, 2.0)
    idx = linspace_indices(16, 8.0, 8)
    assert idx == [0, 2, 4, 6, 8, 10, 12, 15]
    times = frame_times("linspace", idx, clock)
    text = [VideoLlama3Adapter.time_text(t, True) for t in times]
    assert text == ["0.0", "0.3", "0.5", "0.8", "1.1", "1.3", "1.6", "2.0"]  # not index / fps: 1.9 at the end


@pytest.mark.parametrize(
    "n_frames,fps,bounds",
    [(16, 8, None), (21, 10, None), (37, 24, None), (90, 30, None), (250, 25, None), (240, 24, (2.0, 6.0))],
)
def test_linspace_times_are_the_released_loaders_on_real_clips(tmp_path, n_frames, fps, bounds):
    synthetic.write_video(tmp_path / "v.mp4", np.zeros((n_frames, 16, 16, 3), np.uint8), fps=fps)
    _, times = read_frames(tmp_path / "v.mp4", 8, bounds, with_times=True, sampling="linspace")
    duration = round(n_frames / fps, 6)  # ffprobe's format duration (microseconds)
    start, length = (0.0, duration) if bounds is None else (bounds[0], bounds[1] - bounds[0])
    first, last = (0, n_frames - 1) if bounds is None else (int(bounds[0] * fps), int(bounds[1] * fps) - 1)
    spread = np.linspace(start, start + length, last - first + 1)  # every frame of the clip, then 8 kept
    expected = [spread[int(k)] for k in np.linspace(0, last - first, 8, dtype=int)]
    assert all(isinstance(t, np.floating) for t in times)
    assert times == pytest.approx(expected, abs=1e-9)
    assert [VideoLlama3Adapter.time_text(t, True) for t in times] == [released_template(t) for t in expected]


def test_one_per_second_times_are_whole_seconds_from_the_clip_start(tmp_path):
    synthetic.write_video(tmp_path / "v.mp4", np.zeros((250, 16, 16, 3), np.uint8), fps=25)
    _, times = read_frames(tmp_path / "v.mp4", 8, None, with_times=True, sampling="fps1")
    assert list(times) == [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0]  # ticks 0..9, 8 kept by linspace
    _, times = read_frames(tmp_path / "v.mp4", 8, (0.5, 9.7), with_times=True, sampling="fps1")
    ticks = range(10)  # frames 13, 38, ..., 238: one per second of [0.5 s, 9.7 s)
    assert list(times) == [0.5 + ticks[k] for k in np.linspace(0, 9, 8, dtype=int)]
    assert isinstance(times[0], np.floating)


@pytest.mark.parametrize("t", [0.05, 0.25, 0.35, 1.05, 1.15, 2.45, 3.85, 12.55, 0.6666, 7.0])
def test_time_text_rounds_as_the_released_template_for_each_value_type(t):
    """numpy floats (the ffmpeg loader's) round half to even after scaling, Python floats exactly:
    1.05 reads "1.0" as numpy, "1.1" as Python."""
    assert VideoLlama3Adapter.time_text(t, True) == released_template(np.float64(t))
    assert VideoLlama3Adapter.time_text(t, False) == released_template(float(t))
    if t == 1.05:
        text = VideoLlama3Adapter.time_text
        assert (text(t, True), text(t, False)) == ("1.0", "1.1")


def test_one_frame_per_second_then_evenly_and_short_clips_refused():
    # 20 s at 10 fps: ticks at frames 0, 10, ..., 190 (20 of them), 8 kept by linspace
    idx = one_per_second_indices(200, 10.0, 8)
    assert idx == [10 * int(k) for k in np.linspace(0, 19, 8, dtype=int)]
    assert one_per_second_indices(240, 24.0, 8, (2.0, 10.0)) == [48 + 24 * k for k in range(8)]
    with pytest.raises(ValueError, match="fewer than the 8"):
        one_per_second_indices(60, 10.0, 8)  # 6 s: 6 frames at 1 fps


@pytest.mark.parametrize("total", [8, 9, 15, 80, 301])
def test_the_processors_own_rules_are_transformers_sample_frames(total):
    """hf_uniform and hf_centered give the indices of transformers' own `sample_frames`
    (LLaVA-NeXT-Video-hf / OneVision-hf, and InternVL-hf's) for 8 frames of a whole video; a clip
    bounded in time is sampled the same way over its frames."""
    import importlib.util
    from pathlib import Path

    import torch
    from transformers.video_utils import VideoMetadata, default_sample_indices_fn

    meta = VideoMetadata(total_num_frames=total, fps=8.0)
    assert hf_uniform_indices(total, 8.0, 8) == default_sample_indices_fn(meta, num_frames=8).tolist()
    # InternVL's video processor module imports torchvision: its rule is read from its source and run
    where = importlib.util.find_spec("transformers.models.internvl").submodule_search_locations[0]
    source = (Path(where) / "video_processing_internvl.py").read_text()
    shift = "initial_shift = total_num_frames / num_frames / 2"
    rule = "torch.arange(initial_shift, total_num_frames, total_num_frames / num_frames).int()"
    assert shift in source and rule in source and "initial_shift = True" in source
    scope = dict(torch=torch, total_num_frames=total, num_frames=8)
    exec(shift, scope)
    assert hf_centered_indices(total, 8.0, 8) == eval(rule, scope).tolist()
    if total >= 80:  # 10 s at 8 fps: the clip [2 s, 6 s] is frames 16..48, 33 of them
        assert hf_uniform_indices(total, 8.0, 8, (2, 6)) == [16 + k * 33 // 8 for k in range(8)]
        assert hf_centered_indices(total, 8.0, 8, (2, 6))[0] == 16 + int(33 / 16)


@pytest.mark.parametrize("total,fps", [(75, 25.0), (24, 8.0), (12, 8.0), (301, 30.0), (3, 30.0)])
def test_fps2_is_qwen3_vls_own_sample_frames(total, fps):
    """fps2 gives the indices of transformers' Qwen3-VL video processor (2 frames per second, at
    least its min_frames 4, at most its max_frames, here the dataset's n_frames 8, and the clip's
    frames); a clip bounded in time is sampled the same way over its frames."""
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    own = Qwen3VLVideoProcessor(min_frames=4, max_frames=8)
    want = own.sample_frames(VideoMetadata(total_num_frames=total, fps=fps)).tolist()
    assert fps2_indices(total, fps, 8) == want
    if total == 301:  # the clip [2 s, 3.5 s] is frames 60..105, 46 of them: 1.5 s -> 3, at least 4
        assert fps2_indices(total, fps, 8, (2, 3.5)) == [60 + int(i) for i in np.linspace(0, 45, 4).round()]


def test_the_processors_rules_refuse_a_clip_shorter_than_the_frames():
    with pytest.raises(ValueError, match="cannot give 8 frames"):
        hf_uniform_indices(5, 8.0, 8)
