"""The pipeline stages, one module each. A stage imports contracts, maths, the shared layers
(config, dataset, models, runtime, figures) and sop_cosmo.core / attribution; never a sibling
stage (controls alone replays the pipeline).
"""
