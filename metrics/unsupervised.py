"""The unsupervised DAVIS task, scored as the official toolkit scores it (davis2017-evaluation,
`DAVISEvaluation(task="unsupervised")`, its `_evaluate_unsupervised`).

A method is given no mask: it writes up to 20 object proposals per video, ids 1..20 in its PNGs. Following
the toolkit:
- the ground truth is DAVIS/Annotations_unsupervised/480p (a separate archive); every frame is scored, the
  first and the last included, and void pixels (255) are left out of J and F (`Protocol.unsupervised()`);
- the annotated objects are ids 1..max of the first ground-truth frame, as in the semi-supervised task;
- the proposals are ids 1..the highest id in any of the sequence's PNGs (an id never used is an empty
  proposal); more than 20 is refused; fewer proposals than objects are padded with empty ones;
- J and F of every (proposal, object) pair on every frame; proposals are matched one-to-one to the objects by
  the Hungarian method (scipy.optimize.linear_sum_assignment) maximising the sum of the mean over frames of
  (J + F) / 2;
- the matched pairs are listed in proposal order as rows `<sequence>_1`, `<sequence>_2`, ...: row k holds the
  k-th matched proposal against the object it was matched to, which need not be object k
  (`SequenceScores.matches` records both; tables.py writes them to protocol-<set>.json).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .davis import EvaluationError, SequenceScores, _Job, _read_sized, load_ground_truth
from .measures import boundary_radius, pair_scores

MAX_PROPOSALS = 20  # the toolkit's max_n_proposals


def score_proposals(job: _Job) -> SequenceScores:
    """Per-frame J and F of the proposals matched to the annotated objects of one sequence (a worker's job)."""
    protocol = job.protocol
    first_gt, *gt_frames = load_ground_truth(job)
    if not protocol.skip_first_last:
        gt_frames = [first_gt, *gt_frames]
    height, width = first_gt.ids.shape
    radius = boundary_radius((height, width), protocol.bound_th)
    n_objects = int(first_gt.ids.max())

    # Every proposal id the toolkit may see (1..20), then cut to those it does see: 1..max(highest id, objects).
    n_frames = len(gt_frames)
    j_all = np.empty((MAX_PROPOSALS, n_objects, n_frames))
    f_all = np.empty((MAX_PROPOSALS, n_objects, n_frames))
    highest = 0
    for index, (gt, pred_path) in enumerate(zip(gt_frames, job.pred_paths, strict=True)):
        pred_ids = _read_sized(pred_path, job.pred_convention, (height, width), job.gt_paths[0])
        top = int(pred_ids.max())
        if top > MAX_PROPOSALS:
            raise EvaluationError(
                f"{pred_path}: proposal id {top} in sequence {job.sequence}, but the unsupervised task scores at most "
                f"{MAX_PROPOSALS} proposals per sequence (ids 1..{MAX_PROPOSALS}; 255 is no void in a result); keep "
                f"the method's {MAX_PROPOSALS} best proposals of {job.sequence}, numbered 1..{MAX_PROPOSALS}"
            )
        highest = max(highest, top)
        j_all[:, :, index], f_all[:, :, index] = pair_scores(gt.ids, pred_ids, n_objects, MAX_PROPOSALS, radius,
                                                             gt.void)
    n_proposals = max(highest, n_objects)
    j_all, f_all = np.ascontiguousarray(j_all[:n_proposals]), np.ascontiguousarray(f_all[:n_proposals])

    # The toolkit's cost, computed as it does (the same array layout, so the same sums): ties break alike.
    mean_jf = (np.mean(j_all, axis=2) + np.mean(f_all, axis=2)) / 2
    proposals, objects = linear_sum_assignment(-mean_jf)
    rows = list(range(1, len(proposals) + 1))
    scores = SequenceScores(job.sequence, rows)
    frame_names = [p.stem for p in job.pred_paths]
    for row, proposal, obj in zip(rows, proposals.tolist(), objects.tolist(), strict=True):
        scores.frames[row] = frame_names
        scores.j[row] = j_all[proposal, obj]
        scores.f[row] = f_all[proposal, obj]
        scores.matches[row] = (proposal + 1, obj + 1)
    return scores
