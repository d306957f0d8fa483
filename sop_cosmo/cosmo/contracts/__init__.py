"""The file formats of the pipeline, one module each: the single owner of each format
(docs/contracts.md).
"""
