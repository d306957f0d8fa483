# The paper's §2 result: per-feature LP optimum vs a trained SOP on monomial/binomial data.


rule theory:
    output:
        csv=report(
            RESULTS / "theory" / "theory.csv",
            category="Theory",
            labels={"file": "theory.csv"},
        ),
        png=report(
            RESULTS / "theory" / "theory.png",
            category="Theory",
            labels={"file": "theory.png"},
        ),
    log:
        LOGS / "theory" / "theory.log",
    benchmark:
        LOGS / "benchmarks" / "theory" / "theory.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        out=lambda wildcards, output: Path(output.csv).parent,
        flags=flags("theory"),
    shell:
        "sop-cosmo theory {params.flags} --out {params.out} 2>&1 | tee {log}"
