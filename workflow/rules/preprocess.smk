# Stage 2: flat patch files split by cosmology (DESIGN.md §3.2), from simulated or real maps.


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
        cfg=config["preprocess"],
        bins=",".join(str(b) for b in config["preprocess"]["bins"]),
    shell:
        "sop-cosmo preprocess --root {params.root} --out {params.out}"
        " --patch-size {params.cfg[patch_size]} --noise {params.cfg[noise]}"
        " --smoothing-arcmin {params.cfg[smoothing_arcmin]} --bins {params.bins}"
        " --seed {params.cfg[seed]} --quiet > {log} 2>&1"
