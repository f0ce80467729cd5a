"""Data layer of the suite: DAVIS 2016/2017 and YouTube-VOS readers, result writers, downloads and
the embedded synthetic dataset. Nothing here depends on a method or on the evaluator."""
