"""Multi-object soft aggregation: per-object predictions of one frame -> one label map.

FRTM and LWL run one prediction per object and merge them much as RGMP does ("soft aggregation"):
estimate a background probability, then a softmax across background and objects. They differ in the
background estimate, FRTM min_i (1 - p_i), LWL (as RGMP) the product prod_i (1 - p_i), and in what the
softmax takes: LWL the log-odds (= normalised odds, RGMP), FRTM's released code the odds themselves.

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
    """FRTM's merge, as the released Tracker.track: probabilities (N, H, W) of N >= 1 objects ->
    (labels (H, W) int64 in 0..N, soft (N, H, W)).

    Probabilities are clamped to [1e-7, 1 - 1e-7]; the background is p0 = min_i (1 - p_i); then a softmax
    over the ODDS p / (1 - p) of [p0, p_1..p_N] (exp of the odds, not of the log-odds: the released code
    writes F.softmax(p / (1 - p))); labels is its argmax (ties: the lower index, background first); each
    object keeps its softmax value on its own argmax region and 0 elsewhere. These soft rows are what the
    released tracker stores as the objects' labels for the target models' memories: near binary (a clear
    winner's exp(odds) dominates), 0 outside the object's region. One object is not special: its row is
    softmax([(1 - p) / p, p / (1 - p)])[1] where p > 0.5, 0 elsewhere.

    The argmax equals that of [p0, p_1..p_N] (the odds are monotone in p). Since min_i (1 - p_i) >=
    prod_i (1 - p_i), the background wins more often than with RGMP's product (p = 0.4 and 0.4: background
    here, an object with RGMP); every pixel labelled as an object here gets the same object under RGMP.
    The label image the released tracker outputs for several objects is a SECOND merge of these soft rows
    (methods.frtm.tracker.frame_labels), not this argmax.
    """
    p = _float(probabilities).clamp(EPS, 1 - EPS)
    background = (1 - p).min(dim=0, keepdim=True).values
    all_p = torch.cat([background, p], dim=0)
    segs = torch.softmax(all_p / (1 - all_p), dim=0)
    labels = first_argmax(segs)
    ids = torch.arange(1, p.shape[0] + 1, device=p.device).view(-1, 1, 1)
    soft = segs[1:] * (labels.unsqueeze(0) == ids).to(segs.dtype)
    return labels, soft


def merge_lwl(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LWL's merge (RGMP aggregation; released `LWL.merge_results`): logits (N, H, W) -> (labels (H, W) int64
    in 0..N, probs (N+1, H, W)).

    p = sigmoid(logits); background = prod_i (1 - p_i), clamped to [1e-7, 1 - 1e-7] before taking its
    logit; probs = softmax over [logit(background), logits] (background at index 0); labels = argmax.

    A single object goes through the same formula, as in the released code (its VOS runs always merge, even
    for one object): probs = [1 - q, q] with q = sigmoid(2 logit) (up to the clamp), the probability the
    tracker feeds back; labels = logit > 0 as with sigmoid(logit).
    """
    x = _float(logits)
    background = torch.prod(1 - torch.sigmoid(x), dim=0, keepdim=True).clamp(EPS, 1 - EPS)
    merged = torch.softmax(torch.cat([torch.log(background / (1 - background)), x], dim=0), dim=0)
    return first_argmax(merged), merged


def first_argmax(rows: torch.Tensor) -> torch.Tensor:
    """rows.argmax(dim=0) for (K, H, W), ties to the lower index, as torch.argmax: written as K - 1
    elementwise comparisons because torch's CPU argmax over the leading dimension of a frame-sized map is
    slow (78 ms for 2 x 480 x 854 on one thread, half of FRTM D-only's time per frame; this takes 6 ms)."""
    labels = torch.zeros(rows.shape[1:], dtype=torch.int64, device=rows.device)
    best = rows[0]
    for k in range(1, rows.shape[0]):
        better = rows[k] > best
        labels = torch.where(better, k, labels)
        best = torch.where(better, rows[k], best)
    return labels
