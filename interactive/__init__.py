"""The DAVIS interactive track: sessions of the package davisinteractive (its robot, its report, its summary)
driving a method of methods/registry.py INTERACTIVE_METHODS, the suite's own summary, stand-in datasets and
the scribbles download. `python -m interactive --help` lists the commands; compat.py loads the package."""
