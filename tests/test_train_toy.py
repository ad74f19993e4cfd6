import numpy as np
import pandas as pd
import torch

from vlmflow.data import synthetic
from vlmflow.models import toy
from vlmflow.models.llava_video import LlavaVideoAdapter
from vlmflow.stages.toy_training import STAGE_TASKS, Batcher, train


def test_training_pixels_equal_the_image_processor(tiny_adapter):
    b = Batcher(tiny_adapter, STAGE_TASKS["video"], seed=0)
    qs = b.questions(3)
    batch = b.batch(qs)
    for q, pix in zip(qs, batch["pixels"]):
        ref = tiny_adapter.pixel_values(synthetic.render(q, synthetic.sampled_indices(q)))
        assert torch.allclose(pix, ref, atol=1e-5)


def test_a_short_training_run_saves_a_loadable_checkpoint(tmp_path):
    train("image", tmp_path / "img", steps=3, seed=0, eval_every=3)
    train(
        "video",
        tmp_path / "vid",
        steps=2,
        seed=1,
        init=tmp_path / "img",
        eval_every=2,
        task_weights={"moving_direction": 3.0},
    )
    a = LlavaVideoAdapter.from_pretrained(str(tmp_path / "vid"), system_prompt=toy.SYSTEM_PROMPT)
    assert a.position_mode == "frame_shared" and a.grid == (8, 3, 3)
    ev = pd.read_csv(tmp_path / "vid" / "training_eval.csv")
    assert set(ev.task) == set(STAGE_TASKS["video"]) and ev.step.eq(2).all()
    assert np.isfinite(pd.read_csv(tmp_path / "vid" / "training_log.csv").loss).all()
