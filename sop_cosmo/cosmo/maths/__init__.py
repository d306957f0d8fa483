"""Pure maths of the pipeline: no file I/O, no plotting, no stage imports."""
