"""The evaluator's error type, shared by the DAVIS and YouTube-VOS protocols."""


class EvaluationError(ValueError):
    """Input the evaluator cannot score; the message names the file or folder and the fix."""
