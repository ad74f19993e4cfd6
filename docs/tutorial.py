# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # vlmflow in one clip
# Load the embedded toy VideoLLM, ask it one question about one synthetic clip, and look at where
# the answer's information flows: the paper's cross-frame knockout, an experiment of our own, and
# the logit lens on the video tokens. Under a minute on a CPU. Run it as a script
# (`python docs/tutorial.py`, from the repository root) or open it as a notebook with jupytext.
#
# With your own checkpoint and clip the same five lines are:
#
# ```python
# import vlmflow as vf
# model = vf.load_model("llava_video", "/ckpt/my-videollm")          # a local directory or a hub id
# c = vf.clip(model, "my_clip.mp4", "What happens first?", ["A cup falls", "A door opens"], 0)
# curves = vf.sweep(model, c, "cross_frame")                          # or "vql_to_ql", or your own
# vf.plot_curves(curves, "my_clip_cross_frame.png")
# ```

# %%
from pathlib import Path

import numpy as np

import vlmflow as vf
from vlmflow.data import synthetic

out = Path("results/tutorial")
out.mkdir(parents=True, exist_ok=True)
model = vf.load_model("llava_video", "models/toy-video", system_prompt="toy")
print(f"{model.family}: {model.n_layers} layers, {model.n_heads} heads, video grid {model.grid}")

# %% [markdown]
# One Action Sequence clip of the synthetic benchmark ("in which order do the squares appear?",
# between the clip's bounds; a distractor flashes outside them), written as an mp4 and read back
# with the workflow's frame rule (the mid-points of 8 segments of the clip).

# %%
q = synthetic.sample_question("action_sequence", np.random.default_rng(7))
video = out / "clip.mp4"
synthetic.write_video(video, synthetic.render(q, list(range(q.params["n_frames"]))))
c = vf.clip(
    model, video, q.question, q.candidates, q.answer_index, bounds=q.bounds
)  # the clip's [start, end] s
print(
    q.question,
    q.candidates,
    "-> the model answers",
    model.token_text(c.pred),
    f"(p = {c.p_pred:.2f}); correct:",
    c.answer,
)

# %% [markdown]
# The paper's cross-frame knockout (Fig. 2): frames cannot read earlier frames, in a window of 3
# layers swept over the 8, each next to its matched random-edge control.

# %%
cross = vf.sweep(model, c, "cross_frame", window=3)
print(
    cross[["block", "layer", "rel_change"]]
    .pivot(index="layer", columns="block", values="rel_change")
    .round(1)
)
vf.plot_curves(cross, out / "cross_frame.png")

# %% [markdown]
# An experiment of our own: does the last frame reach the answer directly, or through the question?

# %%
mine = {
    "name": "last_frame",
    "blocks": [
        {"name": "Last frame -> Last", "edges": [["frame[7]", "last"]]},
        {"name": "Last frame -> Question", "edges": [["frame[7]", "question"]]},
    ],
}
curves = vf.sweep(model, c, mine, window=3)
table = vf.plot_curves(curves, out / "last_frame.png")
print(table.pivot(index="layer", columns="block", values="mean").round(1).to_string())

# %% [markdown]
# The logit lens on the video tokens: what each token reads as, layer by layer, through the input
# embedding matrix (the paper's lens).

# %%
answer, lens = vf.probe(model, c, words={"spatial": ["red", "blue", "green"], "temporal": ["then"]})
print(answer[["layer", "p_true", "p_false"]].round(3).to_string(index=False))
top1 = lens[(lens["rank"] == 0) & (lens.projection == "embedding")]
print(top1.groupby("layer").token.agg(lambda t: t.value_counts().index[0]))
