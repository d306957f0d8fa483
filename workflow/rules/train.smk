# Stage 3: the black-box CNN, SOP around it, and the classical-statistics baseline.
# One run per seed of train.seeds ({seed}); SOP seed k wraps CNN seed k.
from sop_cosmo.cosmo.config import TrainConfig

# GPUs of one CNN or SOP job: train.gpus, or none when train.device is cpu (GPU, common.smk).
# With more than one, the job is one torchrun of sop-cosmo train on one node, a rank per GPU
# (docs/pipeline.md, "Multi-GPU training"); each rank gets RANK_THREADS CPU threads.
TRAIN_GPUS = GPU * int(config["train"]["gpus"])
RANK_THREADS = 2
if TRAIN_GPUS > 1 and TrainConfig.batch_size % TRAIN_GPUS:
    raise ValueError(
        f"train.gpus: {TRAIN_GPUS} GPUs do not split the training batch of "
        f"{TrainConfig.batch_size} evenly; use a divisor of it (1, 2, 4, 8, ...)"
    )


# sop-cosmo train, or torchrun over TRAIN_GPUS ranks of it (Snakemake's OMP_NUM_THREADS, the
# job's threads, would otherwise be every rank's).
TRAIN_COMMAND = (
    "sop-cosmo train"
    if TRAIN_GPUS <= 1
    else f"OMP_NUM_THREADS={RANK_THREADS} torchrun --standalone --nproc-per-node {TRAIN_GPUS}"
    " --no-python sop-cosmo train"
)


rule train_cnn:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
    output:
        RESULTS / "train" / "cnn" / "seed{seed}" / "model.pt",
    log:
        LOGS / "train" / "cnn" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "cnn" / "seed{seed}.tsv"
    # On the critical path (data -> CNN -> SOP -> analysis): start it before side jobs.
    priority: 1
    conda:
        "../envs/sop.yaml"
    threads: RANK_THREADS * max(1, TRAIN_GPUS)
    resources:
        mem_mb=8000 * max(1, TRAIN_GPUS),
        runtime=240,
        gpu=TRAIN_GPUS,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        flags=lambda wildcards: train_flags("cnn", wildcards.seed),
        command=TRAIN_COMMAND,
    shell:
        "{params.command} --train {input.train} --val {input.val} --out {params.out}"
        " {params.flags} 2>&1 | tee {log}"


rule train_sop:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
        backbone=RESULTS / "train" / "cnn" / "seed{seed}" / "model.pt",
    output:
        RESULTS / "train" / "sop" / "seed{seed}" / "model.pt",
    log:
        LOGS / "train" / "sop" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "sop" / "seed{seed}.tsv"
    # On the critical path (data -> CNN -> SOP -> analysis): start it before side jobs.
    priority: 1
    conda:
        "../envs/sop.yaml"
    threads: RANK_THREADS * max(1, TRAIN_GPUS)
    resources:
        mem_mb=8000 * max(1, TRAIN_GPUS),
        runtime=480,
        gpu=TRAIN_GPUS,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        flags=lambda wildcards: train_flags("sop", wildcards.seed),
        command=TRAIN_COMMAND,
    shell:
        "{params.command} --train {input.train} --val {input.val} --out {params.out}"
        " --backbone {input.backbone} {params.flags} 2>&1 | tee {log}"


rule train_stats:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
    output:
        RESULTS / "train" / "stats" / "seed{seed}" / "model.pt",
    log:
        LOGS / "train" / "stats" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "stats" / "seed{seed}.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        flags=lambda wildcards: train_flags("stats", wildcards.seed),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " {params.flags} 2>&1 | tee {log}"
