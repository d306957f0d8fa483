# Stage 2: flat patch files split by cosmology (docs/contracts.md), from simulated or real maps.
# preprocess.chunks > 1 scatters the cosmologies over that many jobs (preprocess_chunk, which
# SLURM runs in parallel) and gathers their files (preprocess); the patches are the same.
from sop_cosmo.cosmo.contracts.cosmogrid import read_metainfo
from sop_cosmo.cosmo.maths.cosmology import PARAMETER_NAMES
from sop_cosmo.cosmo.maths.targets import check_targets

CHUNKS = config["preprocess"]["chunks"]
CHUNK_DIR = RESULTS / "patches" / "chunks"

# Unknown target names stop the plan on simulated data (whose fields are known); on real
# data the preprocess job checks them against the metainfo's fields.
if SIMULATED:
    try:
        check_targets(config["preprocess"]["params"], PARAMETER_NAMES)
    except ValueError as err:
        raise ValueError(f"preprocess.{err}") from None


# More chunks than cosmologies would leave jobs with nothing to cut: the plan stops first.
if CHUNKS > 1:
    N_COSMOLOGIES = (
        config["simulate"]["n_cosmologies"]
        if SIMULATED
        else len(read_metainfo(metainfo_input()).get("grid", {}))
    )
    if CHUNKS > N_COSMOLOGIES:
        raise ValueError(
            f"preprocess.chunks: {CHUNKS} chunks for {N_COSMOLOGIES} cosmologies; "
            f"use at most {N_COSMOLOGIES}"
        )

    rule preprocess_chunk:
        input:
            meta=metainfo_input(),
        output:
            temp(expand(CHUNK_DIR / "{{chunk}}" / "{split}.h5", split=SPLITS)),
        log:
            LOGS / "preprocess" / "chunk_{chunk}.log",
        benchmark:
            LOGS / "benchmarks" / "preprocess" / "chunk_{chunk}.tsv"
        wildcard_constraints:
            chunk=r"\d+",
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
            out=lambda wildcards: CHUNK_DIR / wildcards.chunk,
            flags=flags("preprocess"),
        shell:
            "sop-cosmo preprocess --root {params.root} --out {params.out} {params.flags}"
            " --chunk {wildcards.chunk} 2>&1 | tee {log}"

    rule preprocess:
        input:
            expand(
                CHUNK_DIR / "{chunk}" / "{split}.h5", chunk=range(CHUNKS), split=SPLITS
            ),
        output:
            expand(RESULTS / "patches" / "{split}.h5", split=SPLITS),
        log:
            LOGS / "preprocess" / "gather.log",
        benchmark:
            LOGS / "benchmarks" / "preprocess" / "gather.tsv"
        priority: 1
        conda:
            "../envs/sop.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=120,
        params:
            out=RESULTS / "patches",
            chunks=[CHUNK_DIR / str(i) for i in range(CHUNKS)],
        shell:
            "sop-cosmo gather --out {params.out} {params.chunks} 2>&1 | tee {log}"

else:

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
            " 2>&1 | tee {log}"
