# Stage 4: test-set skill of every model and seed: MSE in physical units, R² and the MSE of the
# constant (training-mean) predictor (docs/contracts.md).


rule evaluate:
    input:
        model=RESULTS / "train" / "{model}" / "seed{seed}" / "model.pt",
        data=RESULTS / "patches" / "test.h5",
    output:
        report(
            RESULTS / "evaluate" / "{model}" / "seed{seed}" / "test_metrics.json",
            category="Metrics",
            subcategory="Test MSE",
            labels={"model": "{model}", "seed": "{seed}", "file": "test_metrics.json"},
        ),
    log:
        LOGS / "evaluate" / "{model}" / "seed{seed}.log",
    benchmark:
        LOGS / "benchmarks" / "evaluate" / "{model}" / "seed{seed}.tsv"
    wildcard_constraints:
        model="cnn|sop|stats",
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        device=config["train"]["device"],
    shell:
        "sop-cosmo evaluate --checkpoint {input.model} --data {input.data}"
        " --out {output} --device {params.device} 2>&1 | tee {log}"
