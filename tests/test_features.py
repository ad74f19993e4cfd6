import numpy as np
import pandas as pd
import torch
from conftest import synthetic_sample

from vlmflow.jobs import Job
from vlmflow.settings import ModelLoad
from vlmflow.stages.features import FeaturesJob, cache_task


def features_job(d, model="tiny") -> Job:
    """A feature-caching job over the question and frame files in `d` (of its settings only
    `max_tokens` is read here: none)."""
    return Job(
        FeaturesJob(ModelLoad("llava_video", "x", "toy", "float32", "cpu")),
        dict(questions=d / "q.parquet", frames=d / "f.npz"),
        dict(features=d / "feat.pt", baseline=d / "base.parquet", skipped=d / "skip.parquet"),
        dataset="synthetic",
        model=model,
    )


def test_features_and_baseline_with_recorded_skips(tiny_adapter, tmp_path):
    (q1, f1), (q2, f2) = synthetic_sample("action_sequence", 1), synthetic_sample("object_count", 2)
    long_question = " ".join(["the"] * 600) + "?"  # beyond the 512-token context of the tiny model
    qs = pd.DataFrame(
        [
            dict(
                sample_id="a",
                task="t",
                question=q1.question,
                candidates=q1.candidates,
                answer_index=q1.answer_index,
                video="",
            ),
            dict(
                sample_id="b",
                task="t",
                question=long_question,
                candidates=q2.candidates,
                answer_index=q2.answer_index,
                video="",
            ),
            dict(
                sample_id="c",
                task="t",
                question="",
                candidates=q2.candidates,
                answer_index=q2.answer_index,
                video="",
            ),
        ]
    )
    qs.to_parquet(tmp_path / "q.parquet")
    np.savez(tmp_path / "f.npz", frames=np.stack([f1, f2, f2]))
    job = features_job(tmp_path)
    cache_task(tiny_adapter, job)
    base = pd.read_parquet(tmp_path / "base.parquet")
    skipped = pd.read_parquet(tmp_path / "skip.parquet")
    assert list(base.sample_id) == ["a"] and list(skipped.sample_id) == ["b", "c"]
    assert "exceeds the context" in skipped.reason[0]
    assert "non-option question span" in skipped.reason[1]  # an empty question has no span to place
    feats = torch.load(tmp_path / "feat.pt")
    assert feats["a"].shape == (72, tiny_adapter.model.config.text_config.hidden_size)
    with torch.no_grad():  # the cached tokens are the sample's own, spilled to disk on the way
        assert torch.equal(feats["a"], tiny_adapter.video_features(tiny_adapter.pixel_values(f1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "base.parquet",
        "f.npz",
        "feat.pt",
        "q.parquet",
        "skip.parquet",
    ]
    assert 0 < base.p_base.iloc[0] <= 1 and base["gt"].iloc[0] == "ABCD"[q1.answer_index]
    # the analyses' samples know which option the baseline chose (the failure cases knock it out)
    from vlmflow.stages.features import cached_samples

    reads = Job(
        None, dict(questions=tmp_path / "q.parquet", features=tmp_path / "feat.pt"), dataset="synthetic"
    )
    (b, q, sample), *_ = cached_samples(tiny_adapter, reads, base)
    chosen = sample.layout.predicted_option
    assert (
        chosen is None
        if b.pred_base_id not in sample.option_tokens
        else sample.option_tokens[chosen] == b.pred_base_id
    )
    forced = base.assign(pred_base_id=sample.option_tokens[2])
    (_, _, sample), *_ = cached_samples(tiny_adapter, reads, forced)
    assert sample.layout.predicted_option == 2
    assert sample.layout.spans("predicted_option") == [sample.layout.options[2]]
