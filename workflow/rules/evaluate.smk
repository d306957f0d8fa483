# Stage 4: test-set MSE of every model, in physical units (docs/contracts.md).


rule evaluate:
    input:
        model=RESULTS / "train" / "{model}" / "model.pt",
        data=RESULTS / "patches" / "test.h5",
    output:
        report(
            RESULTS / "evaluate" / "{model}" / "test_metrics.json",
            category="Metrics",
            subcategory="Test MSE",
            labels={"model": "{model}", "file": "test_metrics.json"},
        ),
    log:
        LOGS / "evaluate" / "{model}.log",
    benchmark:
        LOGS / "benchmarks" / "evaluate" / "{model}.tsv"
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
        " --out {output} --device {params.device} > {log} 2>&1"
