"""Multi-object soft aggregation: per-object predictions of one frame -> one label map.

FRTM and LWL run one prediction per object and merge them as RGMP does ("soft aggregation"): estimate a
background probability, then normalise the odds p / (1 - p) of background and objects, which equals a
softmax over their log-odds. They differ in the background estimate: FRTM takes min_i (1 - p_i), LWL (as
RGMP) the product prod_i (1 - p_i).

Callers stack the objects in a fixed order (N, H, W); label k in 1..N means the k-th stacked object, 0 the
background. Mapping these indices back to (possibly non-contiguous) object ids is the caller's job.
"""

from __future__ import annotations

import torch

EPS = 1e-7


def _float(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"expected (N, H, W) with N >= 1 objects, got shape {tuple(x.shape)}")
    return x.to(torch.promote_types(x.dtype, torch.float32))


def merge_frtm(probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FRTM's merge: probabilities (N, H, W) of N objects -> (labels (H, W) int64 in 0..N, soft (N, H, W)).

    Probabilities are clamped to [1e-7, 1 - 1e-7]; the background is p0 = min_i (1 - p_i); the odds
    p / (1 - p) of [p0, p_1..p_N] are normalised to sum to 1 (equal to a softmax over the log-odds).
    labels is the argmax; each object keeps its normalised value on its own argmax region and 0 elsewhere.

    A variant of RGMP's aggregation: the normalised odds have the same argmax as [p0, p_1..p_N] (the odds
    are monotone in p) but other soft values. Since min_i (1 - p_i) >= prod_i (1 - p_i), the background
    wins more often than with RGMP's product (p = 0.4 and 0.4: background here, an object with RGMP);
    every pixel labelled as an object here gets the same object under RGMP.

    With a single object: labels = p > 0.5 and soft = p (unclamped).
    """
    p = _float(probabilities)
    if p.shape[0] == 1:
        return (p[0] > 0.5).long(), p.clone()
    p = p.clamp(EPS, 1 - EPS)
    background = (1 - p).min(dim=0, keepdim=True).values
    all_p = torch.cat([background, p], dim=0)
    odds = all_p / (1 - all_p)
    normalised = odds / odds.sum(dim=0, keepdim=True)
    labels = normalised.argmax(dim=0)
    ids = torch.arange(1, p.shape[0] + 1, device=p.device).view(-1, 1, 1)
    soft = torch.where(labels.unsqueeze(0) == ids, normalised[1:], torch.zeros_like(p))
    return labels, soft


def merge_lwl(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LWL's merge (RGMP aggregation): logits (N, H, W) -> (labels (H, W) int64 in 0..N, probs (N+1, H, W)).

    p = sigmoid(logits); background = prod_i (1 - p_i), clamped to [1e-7, 1 - 1e-7] before taking its
    logit; probs = softmax over [logit(background), logits] (background at index 0); labels = argmax.

    With a single object: labels = logit > 0 and probs = [1 - p, p] (the network's own probability; the
    formula above would give sigmoid(2 * logit) instead, with the same labels).
    """
    x = _float(logits)
    p = torch.sigmoid(x)
    if x.shape[0] == 1:
        return (x[0] > 0).long(), torch.cat([1 - p, p], dim=0)
    background = torch.prod(1 - p, dim=0, keepdim=True).clamp(EPS, 1 - EPS)
    merged = torch.softmax(torch.cat([torch.logit(background), x], dim=0), dim=0)
    return merged.argmax(dim=0), merged
