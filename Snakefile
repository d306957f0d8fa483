# sop-cosmo workflow: the one entry point. Every config key is described in config/README.md.
#   snakemake --cores 8 --use-conda                  (workstation)
#   snakemake --profile profiles/slurm               (SLURM cluster; edit the account first)
#   snakemake --configfile .test/config.yaml -c 1    (tiny CI run)
# Stages write results/<stage>/ and logs/<stage>/; `snakemake --report report.html` after a run
# gathers the figures and metrics.


include: "workflow/rules/common.smk"
include: "workflow/rules/theory.smk"


# Real data (data.source: cosmogrid) has no simulate rule, so nothing can overwrite it.
if SIMULATED:

    include: "workflow/rules/simulate.smk"


include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/nulls.smk"
include: "workflow/rules/levels.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
