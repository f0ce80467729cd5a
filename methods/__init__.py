"""VOS methods behind one interface (methods.base.VOSMethod) and the inference runner.

Each method is a module with a class; a paper row is a method plus a variant's settings (config).
`python -m methods infer ...` runs one row over a dataset and writes DAVIS result folders.
"""
