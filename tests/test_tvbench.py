import json

import pandas as pd
import pytest

from vlmflow.data.synthetic import write_video
from vlmflow.data.tvbench import load_task
from vlmflow.jobs import Job
from vlmflow.stages.frames import FramesJob, extract_task


def write_fixture(root, entries, task="moving_direction"):
    (root / "json").mkdir(parents=True)
    (root / "json" / f"{task}.json").write_text(json.dumps(entries))


def test_missing_annotations_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="json/moving_direction.json"):
        load_task(tmp_path, "moving_direction")


def test_bad_samples_are_skipped_with_reason(tmp_path):
    import numpy as np

    write_fixture(
        tmp_path,
        [
            {"video": "ok.mp4", "question": "Q?", "candidates": ["left", "right"], "answer": "left"},
            {"video": "ok.mp4", "question": "Q?", "candidates": ["left", "right"], "answer": "up"},
            {"video": "gone.mp4", "question": "Q?", "candidates": ["left", "right"], "answer": "right"},
            {"question": "Q?", "candidates": ["a"], "answer": "a"},
            {"video": "corrupt.mp4", "question": "Q?", "candidates": ["left", "right"], "answer": "left"},
        ],
    )
    write_video(tmp_path / "video" / "moving_direction" / "ok.mp4", np.zeros((10, 16, 16, 3), np.uint8))
    (tmp_path / "video" / "moving_direction" / "corrupt.mp4").write_bytes(b"\x00not an mp4" * 50)
    out = tmp_path / "out"
    files = dict(frames=out / "f.npz", questions=out / "q.parquet", skipped=out / "s.parquet")
    extract_task(Job(FramesJob("tvbench", str(tmp_path), 8, "segments"), {}, files, task="moving_direction"))
    skipped = pd.read_parquet(out / "s.parquet").set_index("sample_id").reason
    assert "not among the candidates" in skipped["moving_direction_0001"]
    assert "gone.mp4" in skipped["moving_direction_0002"]
    assert "missing fields" in skipped["moving_direction_0003"]
    assert "cannot decode" in skipped["moving_direction_0004"]
    assert list(pd.read_parquet(out / "q.parquet").sample_id) == ["moving_direction_0000"]
