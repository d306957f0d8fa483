# Noise levels: with two or more noise_levels, each level ({level}) is cut with its own noise
# and smoothing (the rest of preprocess as configured), and a CNN and an SOP of the first
# training seed are trained and evaluated on it under results/levels/{level}/; the rules are
# the pipeline's own with other paths (use rule ... with). skill_by_level gathers their test
# R² and MSE (against the constant predictor) into results/levels/skill_by_level.csv and .png.
# With one level or none, nothing here is planned (that level is the run's own, common.smk).
LEVEL = LEVELS_DIR / "{level}"
LEVEL_IN_EXPAND = LEVELS_DIR / "{{level}}"  # a wildcard that expand() keeps
LEVEL_LOGS = LOGS / "levels" / "{level}"


wildcard_constraints:
    level="|".join(LEVELS) or "(?!)",


if CHUNKS > 1:

    use rule preprocess_chunk as preprocess_chunk_level with:
        output:
            temp(
                expand(
                    LEVEL_IN_EXPAND
                    / "patches"
                    / "chunks"
                    / "{{chunk}}"
                    / "{split}.h5",
                    split=SPLITS,
                )
            ),
        log:
            LEVEL_LOGS / "preprocess" / "chunk_{chunk}.log",
        benchmark:
            LOGS
            / "benchmarks"
            / "levels"
            / "{level}"
            / "preprocess"
            / "chunk_{chunk}.tsv"
        priority: 0
        params:
            root=DATA_ROOT,
            out=lambda wildcards: LEVELS_DIR
            / wildcards.level
            / "patches"
            / "chunks"
            / wildcards.chunk,
            flags=level_flags,

    use rule preprocess as preprocess_level with:
        input:
            expand(
                LEVEL_IN_EXPAND / "patches" / "chunks" / "{chunk}" / "{split}.h5",
                chunk=range(CHUNKS),
                split=SPLITS,
            ),
        output:
            expand(LEVEL_IN_EXPAND / "patches" / "{split}.h5", split=SPLITS),
        log:
            LEVEL_LOGS / "preprocess" / "gather.log",
        benchmark:
            LOGS / "benchmarks" / "levels" / "{level}" / "preprocess" / "gather.tsv"
        priority: 0
        params:
            out=lambda wildcards: LEVELS_DIR / wildcards.level / "patches",
            chunks=lambda wildcards: [
                LEVELS_DIR / wildcards.level / "patches" / "chunks" / str(i)
                for i in range(CHUNKS)
            ],

else:

    use rule preprocess as preprocess_level with:
        output:
            expand(LEVEL_IN_EXPAND / "patches" / "{split}.h5", split=SPLITS),
        log:
            LEVEL_LOGS / "preprocess" / "preprocess.log",
        benchmark:
            LOGS / "benchmarks" / "levels" / "{level}" / "preprocess" / "preprocess.tsv"
        priority: 0
        params:
            root=DATA_ROOT,
            out=lambda wildcards: LEVELS_DIR / wildcards.level / "patches",
            flags=level_flags,


use rule train_cnn as train_cnn_level with:
    input:
        train=LEVEL / "patches" / "train.h5",
        val=LEVEL / "patches" / "val.h5",
    output:
        LEVEL / "train" / "cnn" / "seed{seed}" / "model.pt",
    log:
        LEVEL_LOGS / "train" / "cnn" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "levels" / "{level}" / "train" / "cnn" / "seed{seed}.tsv"
    priority: 0


use rule train_sop as train_sop_level with:
    input:
        train=LEVEL / "patches" / "train.h5",
        val=LEVEL / "patches" / "val.h5",
        backbone=LEVEL / "train" / "cnn" / "seed{seed}" / "model.pt",
    output:
        LEVEL / "train" / "sop" / "seed{seed}" / "model.pt",
    log:
        LEVEL_LOGS / "train" / "sop" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "levels" / "{level}" / "train" / "sop" / "seed{seed}.tsv"
    priority: 0


use rule evaluate as evaluate_level with:
    input:
        model=LEVEL / "train" / "{model}" / "seed{seed}" / "model.pt",
        data=LEVEL / "patches" / "test.h5",
    output:
        LEVEL / "evaluate" / "{model}" / "seed{seed}" / "test_metrics.json",
    log:
        LEVEL_LOGS / "evaluate" / "{model}" / "seed{seed}.log",
    benchmark:
        LOGS
        / "benchmarks"
        / "levels"
        / "{level}"
        / "evaluate"
        / "{model}"
        / "seed{seed}.tsv"
    wildcard_constraints:
        model="cnn|sop",


# Levels in config order: the figure's x axis, and the first is the reference.
rule skill_by_level:
    input:
        [
            path
            for name in LEVELS
            for path in first_seed_metrics(LEVELS_DIR / name / "evaluate").values()
        ],
    output:
        csv=report(
            LEVELS_DIR / "skill_by_level.csv",
            category="Noise levels",
            labels={"file": "skill_by_level.csv"},
        ),
        png=report(
            LEVELS_DIR / "skill_by_level.png",
            category="Noise levels",
            labels={"figure": "skill_by_level"},
        ),
        json=LEVELS_DIR / "skill_by_level.json",
    log:
        LOGS / "levels" / "skill_by_level.log",
    benchmark:
        LOGS / "benchmarks" / "levels" / "skill_by_level.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out=LEVELS_DIR,
        metrics=compare_flags(
            {
                name: first_seed_metrics(LEVELS_DIR / name / "evaluate")
                for name in LEVELS
            }
        ),
    shell:
        "sop-cosmo compare {params.metrics} --out {params.out} --name skill_by_level"
        " 2>&1 | tee {log}"
