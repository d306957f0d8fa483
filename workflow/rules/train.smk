# Stage 3: the black-box CNN, SOP around it, and the classical-statistics baseline.
# GPU is 1 (one GPU per job on a cluster) unless train.device is cpu; see common.smk.
# One run per seed of train.seeds ({seed}); SOP seed k wraps CNN seed k.


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
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        flags=lambda wildcards: train_flags("cnn", wildcards.seed),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " {params.flags} --quiet > {log} 2>&1"


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
    threads: 2
    resources:
        mem_mb=8000,
        runtime=480,
        gpu=GPU,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        flags=lambda wildcards: train_flags("sop", wildcards.seed),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " --backbone {input.backbone} {params.flags} --quiet > {log} 2>&1"


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
        " {params.flags} --quiet > {log} 2>&1"
