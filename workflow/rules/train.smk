# Stage 3: the black-box CNN, SOP around it, and the classical-statistics baseline.
# GPU is 1 (one GPU per job on a cluster) unless train.device is cpu; see common.smk.


rule train_cnn:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
    output:
        RESULTS / "train" / "cnn" / "model.pt",
    log:
        LOGS / "train" / "cnn.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "cnn.tsv"
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
        out=RESULTS / "train" / "cnn",
        flags=train_flags("cnn"),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " {params.flags} --quiet > {log} 2>&1"


rule train_sop:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
        backbone=RESULTS / "train" / "cnn" / "model.pt",
    output:
        RESULTS / "train" / "sop" / "model.pt",
    log:
        LOGS / "train" / "sop.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "sop.tsv"
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
        out=RESULTS / "train" / "sop",
        flags=train_flags("sop"),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " --backbone {input.backbone} {params.flags} --quiet > {log} 2>&1"


rule train_stats:
    input:
        train=RESULTS / "patches" / "train.h5",
        val=RESULTS / "patches" / "val.h5",
    output:
        RESULTS / "train" / "stats" / "model.pt",
    log:
        LOGS / "train" / "stats.log",
    benchmark:
        LOGS / "benchmarks" / "train" / "stats.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=RESULTS / "train" / "stats",
        flags=train_flags("stats"),
    shell:
        "sop-cosmo train --train {input.train} --val {input.val} --out {params.out}"
        " {params.flags} --quiet > {log} 2>&1"
