# Stage 2: flat patch files split by cosmology (docs/contracts.md), from simulated or real maps.


rule preprocess:
    input:
        meta=metainfo_input(),
    output:
        expand(RESULTS / "patches" / "{split}.h5", split=SPLITS),
    log:
        LOGS / "preprocess" / "preprocess.log",
    benchmark:
        LOGS / "benchmarks" / "preprocess" / "preprocess.tsv"
    # On the critical path (data -> CNN -> SOP -> analysis): start it before side jobs.
    priority: 1
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        root=DATA_ROOT,
        out=RESULTS / "patches",
        flags=flags("preprocess"),
    shell:
        "sop-cosmo preprocess --root {params.root} --out {params.out} {params.flags}"
        " --quiet > {log} 2>&1"
