# Stage 1: the built-in simulated grid in the CosmoGridV1 layout (skipped for real data).


rule simulate:
    output:
        meta=metainfo_path(DATA_ROOT),
    log:
        LOGS / "simulate" / "simulate.log",
    benchmark:
        LOGS / "benchmarks" / "simulate" / "simulate.tsv"
    # On the critical path (data -> CNN -> SOP -> analysis): start it before side jobs.
    priority: 1
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        root=DATA_ROOT,
        flags=flags("simulate"),
    shell:
        "sop-cosmo simulate --out {params.root} {params.flags} 2>&1 | tee {log}"
