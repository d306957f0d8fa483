# Stage 1-2: the simulated grid (or real CosmoGridV1 data) and the flat patch files.


rule simulate:
    output:
        meta=DATA_ROOT / "CosmoGrid" / "CosmoGridV1_metainfo.h5",
    log:
        LOGS / "simulate" / "simulate.log",
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        root=DATA_ROOT,
        cfg=config["simulate"],
    shell:
        "sop-cosmo simulate --out {params.root} --n-cosmologies {params.cfg[n_cosmologies]}"
        " --n-perms {params.cfg[n_perms]} --nside {params.cfg[nside]}"
        " --seed {params.cfg[seed]} --quiet > {log} 2>&1"


rule preprocess:
    input:
        meta=metainfo_input(),
    output:
        expand(RESULTS / "patches" / "{split}.h5", split=SPLITS),
    log:
        LOGS / "preprocess" / "preprocess.log",
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
