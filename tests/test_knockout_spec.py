import pytest
import torch
from conftest import synthetic_sample

from vlmflow.knockout.masks import blocked_pairs, compile_knockout, kept_edges
from vlmflow.knockout.spec import EXPERIMENTS, Edge, Knockout, explicit_window, sweep


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_specs_round_trip(experiment):
    for k in EXPERIMENTS[experiment]:
        assert Knockout.from_dict(k.to_dict()) == k


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="mode"):
        Knockout("x", (Edge("video", "last"),), mode="zero")
    with pytest.raises(ValueError, match="needs a target"):
        Knockout("x", (Edge("video"),))
    with pytest.raises(ValueError, match="window style"):
        sweep(8, 3, "middle")
    with pytest.raises(ValueError, match="explicit window"):
        explicit_window([0, 9], 8)


def test_window_styles_follow_spec():
    L, k = 32, 9
    c = {w.centre: w.layers for w in sweep(L, k, "center")}
    assert c[0] == tuple(range(0, 5)) and c[10] == tuple(range(6, 15)) and c[31] == tuple(range(27, 32))
    inv = {w.centre: w.layers for w in sweep(L, k, "inverse")}
    assert set(inv[10]) == set(range(L)) - set(range(6, 15))
    assert {w.centre: w.layers for w in sweep(L, k, "top_down")}[20] == tuple(range(20, 32))
    assert {w.centre: w.layers for w in sweep(L, k, "bottom_up")}[15] == tuple(range(0, 16))


def test_cross_frame_blocks_exactly_earlier_frames(tiny_adapter):
    q, _ = synthetic_sample()
    _, layout, _ = tiny_adapter.encode(q)
    m = blocked_pairs(layout, EXPERIMENTS["cross_frame"][0])
    T = layout.grid[0]
    expected = torch.zeros_like(m)
    for i in range(layout.n_tokens):
        for j in range(layout.n_tokens):
            fi = [t for t in range(T) if layout.frame(t)[0] <= i < layout.frame(t)[1]]
            fj = [t for t in range(T) if layout.frame(t)[0] <= j < layout.frame(t)[1]]
            expected[i, j] = bool(fi and fj and fj[0] < fi[0])
    assert torch.equal(m, expected)
    assert compile_knockout(layout, EXPERIMENTS["cross_frame"][0]).q0 == layout.frame(1)[0]


def test_last_to_last_is_the_self_edge_only(tiny_adapter):
    q, _ = synthetic_sample()
    _, layout, _ = tiny_adapter.encode(q)
    m = blocked_pairs(layout, EXPERIMENTS["vql_to_ql"][3])
    assert m.sum() == 1 and m[layout.last, layout.last]
    assert compile_knockout(layout, EXPERIMENTS["vql_to_ql"][3]).q0 == layout.last


def test_kept_edges_counts_the_lower_triangle():
    N = 10
    none = torch.zeros(N, N, dtype=torch.bool)
    assert kept_edges(N, [none] * 3) == 3 * N * (N + 1) // 2
    upper = torch.ones(N, N, dtype=torch.bool).triu(1)  # blocking the future changes nothing
    assert kept_edges(N, [upper]) == N * (N + 1) // 2
    one = none.clone()
    one[5, 2] = True
    assert kept_edges(N, [one, none]) == N * (N + 1) - 1


def test_random_edge_control_matches_the_rows_and_counts(tiny_adapter):
    from vlmflow.knockout.masks import compile_knockout, random_like

    q, _ = synthetic_sample()
    _, layout, _ = tiny_adapter.encode(q)
    for ko in [EXPERIMENTS["cross_frame"][0], *EXPERIMENTS["vql_to_ql"]]:
        b = compile_knockout(layout, ko)
        r = random_like(b, seed=3)
        n_rows, N = b.rows().shape
        causal = torch.arange(N)[None, :] <= torch.arange(b.q0, b.q0 + n_rows)[:, None]
        assert r.q0 == b.q0 and torch.equal(r.rows().sum(1), (b.rows() & causal).sum(1))
        assert not (r.rows() & ~causal).any()
        assert torch.equal(random_like(b, seed=3).rows(), r.rows())
        if b.rows().sum() > 1 and ko.name != "Last -> Last":
            assert not torch.equal(r.rows(), b.rows())
            assert not torch.equal(random_like(b, seed=4).rows(), r.rows())
