"""Multi-object soft aggregation (methods.core.merging)."""

from __future__ import annotations

import math

import pytest
import torch

from methods.core.merging import merge_frtm, merge_lwl


def pixels(*columns):
    """(N, 1, P) from P pixel columns, each the N object probabilities (or logits) of one pixel."""
    return torch.tensor(columns, dtype=torch.float64).T.unsqueeze(1)


def test_frtm_hand_examples():
    """Released Tracker.track: softmax over the ODDS (exp of p / (1 - p)), not the normalised odds (the
    earlier version of this test, which encoded odds / sum(odds))."""
    p = pixels([0.9, 0.6], [0.4, 0.3], [0.2, 0.7], [0.4, 0.4])
    labels, soft = merge_frtm(p)
    # background min(1 - p): 0.1, 0.6, 0.3, 0.6; all p < 0.5 -> background
    assert labels.tolist() == [[1, 0, 2, 0]]
    # pixel 0: odds bg 1/9, obj1 9, obj2 1.5 -> obj1 gets e^9 / (e^(1/9) + e^9 + e^1.5)
    e = math.exp
    assert soft[0, 0, 0].item() == pytest.approx(e(9) / (e(1 / 9) + e(9) + e(1.5)))
    assert soft[1, 0, 0].item() == 0
    # pixel 2: odds bg 3/7, obj1 1/4, obj2 7/3
    assert soft[1, 0, 2].item() == pytest.approx(e(7 / 3) / (e(3 / 7) + e(1 / 4) + e(7 / 3)))
    assert soft[:, 0, 1].abs().sum() == 0 and soft[:, 0, 3].abs().sum() == 0
    assert labels.dtype == torch.int64


def test_frtm_clamps_extremes():
    labels, soft = merge_frtm(pixels([1.0, 0.0], [0.0, 0.0], [1.0, 1.0]))
    assert labels.tolist() == [[1, 0, 1]]
    assert torch.isfinite(soft).all()
    assert soft[0, 0, 0].item() == pytest.approx(1.0)


def test_frtm_single_object_is_merged_too():
    """Released: one object goes through the same merge (two-way softmax over the odds), so its stored
    row is near binary and 0 where p <= 0.5 (the earlier version kept the raw p)."""
    p = torch.tensor([[[0.2, 0.5, 0.51, 0.9, 1.0]]], dtype=torch.float64)
    labels, soft = merge_frtm(p)
    assert labels.tolist() == [[0, 0, 1, 1, 1]]
    q = p.clamp(1e-7, 1 - 1e-7)
    expected = torch.softmax(torch.cat([(1 - q) / q, q / (1 - q)]), 0)[1] * (labels == 1)
    torch.testing.assert_close(soft[0], expected)
    assert soft[0, 0, 3].item() > 0.9998  # p = 0.9 -> e^9 / (e^9 + e^(1/9))
    assert soft[0, 0, 0].item() == 0 and soft[0, 0, 1].item() == 0


def test_frtm_soft_equals_softmax_of_odds():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 8, 9, generator=g, dtype=torch.float64)
    labels, soft = merge_frtm(p)
    all_p = torch.cat([(1 - p).min(0, keepdim=True).values, p])
    ref = torch.softmax(all_p / (1 - all_p), 0)
    for k in range(1, 4):
        region = labels == k
        torch.testing.assert_close(soft[k - 1][region], ref[k][region])
        assert (soft[k - 1][~region] == 0).all()


def test_frtm_labels_are_argmax_of_min_background_and_p():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(4, 50, 60, generator=g, dtype=torch.float64)
    labels, _ = merge_frtm(p)
    ref = torch.cat([(1 - p).min(0, keepdim=True).values, p]).argmax(0)
    assert torch.equal(labels, ref)


def test_frtm_vs_rgmp_product_background():
    """Not the same argmax as RGMP in general (min >= product background), but FRTM's objects are RGMP's."""
    g = torch.Generator().manual_seed(2)
    p = torch.rand(3, 40, 40, generator=g, dtype=torch.float64)
    frtm, _ = merge_frtm(p)
    rgmp, _ = merge_lwl(torch.logit(p))
    assert (frtm != rgmp).any()  # e.g. p = (0.4, 0.4): background for FRTM, an object for RGMP
    assert torch.equal(rgmp[frtm > 0], frtm[frtm > 0])
    assert merge_frtm(pixels([0.4, 0.4]))[0].item() == 0
    assert merge_lwl(torch.logit(pixels([0.4, 0.4])))[0].item() == 1


def test_lwl_hand_example():
    p = pixels([0.9, 0.6], [0.4, 0.3], [0.4, 0.4])
    labels, probs = merge_lwl(torch.logit(p))
    assert labels.tolist() == [[1, 0, 1]]  # bg 0.04, 0.42, 0.36
    # softmax of logits == normalised odds: pixel 0 odds bg 0.04/0.96, 9, 1.5
    bg = 0.04 / 0.96
    assert probs[:, 0, 0].tolist() == pytest.approx([bg / (bg + 10.5), 9 / (bg + 10.5), 1.5 / (bg + 10.5)])


def test_lwl_sums_to_one_and_labels_argmax():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 30, 20, generator=g) * 4
    labels, probs = merge_lwl(logits)
    assert probs.shape == (6, 30, 20)
    torch.testing.assert_close(probs.sum(0), torch.ones(30, 20))
    assert torch.equal(labels, probs.argmax(0))
    assert labels.dtype == torch.int64 and labels.max() <= 5


def test_lwl_extreme_logits_finite():
    labels, probs = merge_lwl(pixels([100.0, -100.0], [-100.0, -100.0], [100.0, 100.0]).float())
    assert torch.isfinite(probs).all()
    assert labels.tolist() == [[1, 0, 1]]


def test_lwl_single_object_goes_through_the_same_formula():
    """As the released merge_results: background 1 - sigmoid(s), so the object's merged probability is
    sigmoid(2 s) (what the tracker feeds back), and the label is still s > 0."""
    logits = torch.tensor([[[-2.0, 0.0, 0.1, 3.0]]])
    labels, probs = merge_lwl(logits)
    assert labels.tolist() == [[0, 0, 1, 1]]
    torch.testing.assert_close(probs[1], torch.sigmoid(2 * logits[0]))
    torch.testing.assert_close(probs.sum(0), torch.ones(1, 4))


@pytest.mark.parametrize("merge", [merge_frtm, merge_lwl])
def test_rejects_no_objects(merge):
    with pytest.raises(ValueError):
        merge(torch.zeros(0, 4, 4))


def test_first_argmax_is_torch_argmax_ties_included():
    from methods.core.merging import first_argmax

    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 3, (4, 37, 53), generator=g).float()  # many ties
    assert torch.equal(first_argmax(rows), rows.argmax(dim=0))
    rows = torch.rand(1, 5, 7, generator=g)
    assert torch.equal(first_argmax(rows), torch.zeros(5, 7, dtype=torch.int64))
