# sop-cosmo workflow: the one entry point. Every config key is described in config/README.md.
#   snakemake --cores 8 --use-conda                  (workstation)
#   snakemake --configfile .test/config.yaml -c 1    (tiny CI run)


include: "workflow/rules/common.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
