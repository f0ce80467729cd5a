"""Evaluation of VOS results: DAVIS J, F, J&F, recall, decay (exactly as the official toolkit) and
YouTube-VOS J, F and G. Command line: `python -m metrics GT_DIR PRED_DIR --out OUT_DIR`."""

from .davis import EvaluationError, EvaluationResult, Protocol, evaluate
from .tables import write_tables
from .youtube_vos import YouTubeVOSResult, evaluate_youtube_vos, write_youtube_vos_tables

__all__ = ["EvaluationError", "EvaluationResult", "Protocol", "YouTubeVOSResult", "evaluate",
           "evaluate_youtube_vos", "write_tables", "write_youtube_vos_tables"]
