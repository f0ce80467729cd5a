"""Evaluation of VOS results: DAVIS J, F, J&F, recall, decay (exactly as the official toolkit, semi-supervised
and unsupervised tasks) and YouTube-VOS J, F and G. Command line: `vos-eval GT_DIR PRED_DIR --out OUT_DIR` (or `python -m metrics`).

From Python (both folders hold <sequence>/<frame>.png):

    import metrics

    result = metrics.evaluate("DAVIS/Annotations/480p", "results/", sequences=["blackswan"], workers=1)
    result.global_statistics()   # {"J&F-Mean": ..., "J-Mean": ..., "J-Recall": ..., ...}
    result.object_statistics()   # one dict per object <sequence>_<id>
    result.per_frame()           # one dict per scored frame and object: J and F
    metrics.write_tables(result, "scores/", "val")   # the CSV files vos-eval writes

The unsupervised task (up to 20 proposals per video, matched to the annotated objects, as the toolkit's
`--task unsupervised`): `metrics.evaluate("DAVIS/Annotations_unsupervised/480p", "proposals/", task="unsupervised")`,
on the command line `--task unsupervised` (metrics/unsupervised.py).

`metrics.Protocol.corrected()` (or Protocol(objects="all", ignore_void=True, decay_uint8_quirk=False)) turns
on the corrections of the official toolkit's quirks (metrics/README.md)."""

from .davis import EvaluationError, EvaluationResult, Protocol, evaluate
from .tables import write_tables

__all__ = ["EvaluationError", "EvaluationResult", "Protocol", "YouTubeVOSResult", "evaluate",
           "evaluate_youtube_vos", "write_tables", "write_youtube_vos_tables"]

_YOUTUBE_VOS = {"YouTubeVOSResult", "evaluate_youtube_vos", "write_youtube_vos_tables"}


def __getattr__(name: str):
    # The YouTube-VOS evaluator (and pandas, which it uses) is imported on first use only: the DAVIS
    # command line never needs it, and a cold run's start-up is a large share of its time.
    if name in _YOUTUBE_VOS:
        from . import youtube_vos

        return getattr(youtube_vos, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
