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
