# Nulls: runs whose answer is known (docs/analysis.md, "Nulls"). With nulls.permuted_labels the
# patches are cut again with the training cosmologies' targets permuted (preprocess
# --permute-labels: each carries another's, val and test their own), a CNN and an SOP of the
# first training seed are trained on them like the real ones, and their analysis
# (results/analyze_null_permuted/) must make no claim. The rules are the pipeline's own, with
# other paths (use rule ... with).
NULL_PATCHES = RESULTS / "patches_null_permuted"
NULL_TRAIN = RESULTS / "train_null_permuted"
NULL_SOP = NULL_TRAIN / "sop" / f"seed{SEEDS[0]}" / "model.pt"

if CHUNKS > 1:

    use rule preprocess_chunk as preprocess_chunk_null_permuted with:
        output:
            temp(
                expand(
                    NULL_PATCHES / "chunks" / "{{chunk}}" / "{split}.h5", split=SPLITS
                )
            ),
        log:
            LOGS / "preprocess_null_permuted" / "chunk_{chunk}.log",
        benchmark:
            LOGS / "benchmarks" / "preprocess_null_permuted" / "chunk_{chunk}.tsv"
        priority: 0
        params:
            root=DATA_ROOT,
            out=lambda wildcards: NULL_PATCHES / "chunks" / wildcards.chunk,
            flags=flags("preprocess", permute_labels=True),

    use rule preprocess as preprocess_null_permuted with:
        input:
            expand(
                NULL_PATCHES / "chunks" / "{chunk}" / "{split}.h5",
                chunk=range(CHUNKS),
                split=SPLITS,
            ),
        output:
            expand(NULL_PATCHES / "{split}.h5", split=SPLITS),
        log:
            LOGS / "preprocess_null_permuted" / "gather.log",
        benchmark:
            LOGS / "benchmarks" / "preprocess_null_permuted" / "gather.tsv"
        priority: 0
        params:
            out=NULL_PATCHES,
            chunks=[NULL_PATCHES / "chunks" / str(i) for i in range(CHUNKS)],

else:

    use rule preprocess as preprocess_null_permuted with:
        output:
            expand(NULL_PATCHES / "{split}.h5", split=SPLITS),
        log:
            LOGS / "preprocess_null_permuted" / "preprocess.log",
        benchmark:
            LOGS / "benchmarks" / "preprocess_null_permuted" / "preprocess.tsv"
        priority: 0
        params:
            root=DATA_ROOT,
            out=NULL_PATCHES,
            flags=flags("preprocess", permute_labels=True),


use rule train_cnn as train_cnn_null_permuted with:
    input:
        train=NULL_PATCHES / "train.h5",
        val=NULL_PATCHES / "val.h5",
    output:
        NULL_TRAIN / "cnn" / "seed{seed}" / "model.pt",
    log:
        LOGS / "train_null_permuted" / "cnn" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "train_null_permuted" / "cnn" / "seed{seed}.tsv"
    priority: 0


use rule train_sop as train_sop_null_permuted with:
    input:
        train=NULL_PATCHES / "train.h5",
        val=NULL_PATCHES / "val.h5",
        backbone=NULL_TRAIN / "cnn" / "seed{seed}" / "model.pt",
    output:
        NULL_TRAIN / "sop" / "seed{seed}" / "model.pt",
    log:
        LOGS / "train_null_permuted" / "sop" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "train_null_permuted" / "sop" / "seed{seed}.tsv"
    priority: 0


# Its input replaces the real analysis's, so it does not take its own summary as the null.
use rule analyze as analyze_null_permuted with:
    input:
        models=[NULL_SOP],
        data=NULL_PATCHES / "test.h5",
    output:
        summary=report(
            NULL_SUMMARY,
            category="Nulls",
            labels={"file": "summary.json (permuted labels)"},
        ),
        groups_csv=RESULTS / "analyze_null_permuted" / "groups.csv",
        groups_h5=RESULTS / "analyze_null_permuted" / "groups.h5",
        sweep=RESULTS / "analyze_null_permuted" / "threshold_sweep.csv",
    log:
        LOGS / "analyze_null_permuted" / "analyze.log",
    benchmark:
        LOGS / "benchmarks" / "analyze_null_permuted" / "analyze.tsv"
    params:
        out=RESULTS / "analyze_null_permuted",
        checkpoints=lambda wildcards, input: checkpoint_flags(input.models),
        flags=flags("analyze", device=config["train"]["device"]),


# With nulls.gaussian_maps the grid is simulated again as Gaussian maps with the lognormal
# maps' spectra (simulate --field gaussian), cut like the real maps, and a CNN and an SOP of the
# first training seed are trained, evaluated and analysed on them like the real ones (results/
# analyze_null_gaussian/; gated on the permuted-label null like the real analysis). Their skill
# and effects next to the lognormal run's (gaussian_vs_lognormal) say how much of a finding
# needs non-Gaussian structure. Simulated data only (common.smk stops the plan otherwise).
GAUSSIAN_ROOT = RESULTS / "simulate_null_gaussian"
GAUSSIAN_PATCHES = RESULTS / "patches_null_gaussian"
GAUSSIAN_TRAIN = RESULTS / "train_null_gaussian"
GAUSSIAN_EVALUATE = RESULTS / "evaluate_null_gaussian"

if SIMULATED:

    use rule simulate as simulate_null_gaussian with:
        output:
            meta=metainfo_path(GAUSSIAN_ROOT),
        log:
            LOGS / "simulate_null_gaussian" / "simulate.log",
        benchmark:
            LOGS / "benchmarks" / "simulate_null_gaussian" / "simulate.tsv"
        priority: 0
        params:
            root=GAUSSIAN_ROOT,
            flags=flags("simulate", field="gaussian"),

    if CHUNKS > 1:

        use rule preprocess_chunk as preprocess_chunk_null_gaussian with:
            input:
                meta=metainfo_path(GAUSSIAN_ROOT),
            output:
                temp(
                    expand(
                        GAUSSIAN_PATCHES / "chunks" / "{{chunk}}" / "{split}.h5",
                        split=SPLITS,
                    )
                ),
            log:
                LOGS / "preprocess_null_gaussian" / "chunk_{chunk}.log",
            benchmark:
                LOGS / "benchmarks" / "preprocess_null_gaussian" / "chunk_{chunk}.tsv"
            priority: 0
            params:
                root=GAUSSIAN_ROOT,
                out=lambda wildcards: GAUSSIAN_PATCHES / "chunks" / wildcards.chunk,
                flags=flags("preprocess"),

        use rule preprocess as preprocess_null_gaussian with:
            input:
                expand(
                    GAUSSIAN_PATCHES / "chunks" / "{chunk}" / "{split}.h5",
                    chunk=range(CHUNKS),
                    split=SPLITS,
                ),
            output:
                expand(GAUSSIAN_PATCHES / "{split}.h5", split=SPLITS),
            log:
                LOGS / "preprocess_null_gaussian" / "gather.log",
            benchmark:
                LOGS / "benchmarks" / "preprocess_null_gaussian" / "gather.tsv"
            priority: 0
            params:
                out=GAUSSIAN_PATCHES,
                chunks=[GAUSSIAN_PATCHES / "chunks" / str(i) for i in range(CHUNKS)],

    else:

        use rule preprocess as preprocess_null_gaussian with:
            input:
                meta=metainfo_path(GAUSSIAN_ROOT),
            output:
                expand(GAUSSIAN_PATCHES / "{split}.h5", split=SPLITS),
            log:
                LOGS / "preprocess_null_gaussian" / "preprocess.log",
            benchmark:
                LOGS / "benchmarks" / "preprocess_null_gaussian" / "preprocess.tsv"
            priority: 0
            params:
                root=GAUSSIAN_ROOT,
                out=GAUSSIAN_PATCHES,
                flags=flags("preprocess"),

    use rule train_cnn as train_cnn_null_gaussian with:
        input:
            train=GAUSSIAN_PATCHES / "train.h5",
            val=GAUSSIAN_PATCHES / "val.h5",
        output:
            GAUSSIAN_TRAIN / "cnn" / "seed{seed}" / "model.pt",
        log:
            LOGS / "train_null_gaussian" / "cnn" / "seed{seed}.log",
        benchmark:
            LOGS / "benchmarks" / "train_null_gaussian" / "cnn" / "seed{seed}.tsv"
        priority: 0

    use rule train_sop as train_sop_null_gaussian with:
        input:
            train=GAUSSIAN_PATCHES / "train.h5",
            val=GAUSSIAN_PATCHES / "val.h5",
            backbone=GAUSSIAN_TRAIN / "cnn" / "seed{seed}" / "model.pt",
        output:
            GAUSSIAN_TRAIN / "sop" / "seed{seed}" / "model.pt",
        log:
            LOGS / "train_null_gaussian" / "sop" / "seed{seed}.log",
        benchmark:
            LOGS / "benchmarks" / "train_null_gaussian" / "sop" / "seed{seed}.tsv"
        priority: 0

    use rule evaluate as evaluate_null_gaussian with:
        input:
            model=GAUSSIAN_TRAIN / "{model}" / "seed{seed}" / "model.pt",
            data=GAUSSIAN_PATCHES / "test.h5",
        output:
            GAUSSIAN_EVALUATE / "{model}" / "seed{seed}" / "test_metrics.json",
        log:
            LOGS / "evaluate_null_gaussian" / "{model}" / "seed{seed}.log",
        benchmark:
            LOGS
            / "benchmarks"
            / "evaluate_null_gaussian"
            / "{model}"
            / "seed{seed}.tsv"
        wildcard_constraints:
            model="cnn|sop",

    use rule analyze as analyze_null_gaussian with:
        input:
            unpack(lambda wildcards: null_input()),
            models=[GAUSSIAN_TRAIN / "sop" / f"seed{SEEDS[0]}" / "model.pt"],
            data=GAUSSIAN_PATCHES / "test.h5",
        output:
            summary=report(
                GAUSSIAN_SUMMARY,
                category="Nulls",
                labels={"file": "summary.json (Gaussian maps)"},
            ),
            groups_csv=RESULTS / "analyze_null_gaussian" / "groups.csv",
            groups_h5=RESULTS / "analyze_null_gaussian" / "groups.h5",
            sweep=RESULTS / "analyze_null_gaussian" / "threshold_sweep.csv",
        log:
            LOGS / "analyze_null_gaussian" / "analyze.log",
        benchmark:
            LOGS / "benchmarks" / "analyze_null_gaussian" / "analyze.tsv"
        params:
            out=RESULTS / "analyze_null_gaussian",
            checkpoints=lambda wildcards, input: checkpoint_flags(input.models),
            flags=flags("analyze", device=config["train"]["device"]),
            null=null_flag,

    # The real run's first seed (as the null's) and analysis (every seed) are the reference.
    rule compare_null_gaussian:
        input:
            real=first_seed_metrics(RESULTS / "evaluate").values(),
            null=first_seed_metrics(GAUSSIAN_EVALUATE).values(),
            real_summary=RESULTS / "analyze" / "summary.json",
            null_summary=GAUSSIAN_SUMMARY,
        output:
            json=report(
                GAUSSIAN_COMPARISON,
                category="Nulls",
                labels={"file": "gaussian_vs_lognormal.json"},
            ),
            csv=GAUSSIAN_COMPARISON.with_suffix(".csv"),
            png=report(
                GAUSSIAN_COMPARISON.with_suffix(".png"),
                category="Nulls",
                labels={"figure": "gaussian_vs_lognormal"},
            ),
        log:
            LOGS / "nulls" / "gaussian_vs_lognormal.log",
        benchmark:
            LOGS / "benchmarks" / "nulls" / "gaussian_vs_lognormal.tsv"
        conda:
            "../envs/sop.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            out=lambda wildcards, output: Path(output.json).parent,
            metrics=compare_flags(
                {
                    "lognormal": first_seed_metrics(RESULTS / "evaluate"),
                    "gaussian": first_seed_metrics(GAUSSIAN_EVALUATE),
                }
            ),
        shell:
            "sop-cosmo compare {params.metrics} --summary lognormal {input.real_summary}"
            " --summary gaussian {input.null_summary} --out {params.out}"
            " --name gaussian_vs_lognormal 2>&1 | tee {log}"
