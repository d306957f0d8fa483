# Stage 6: the findings notebook executed headless (papermill) on this run's outputs.
# `snakemake --report report.html` afterwards gathers every output marked with report().


rule notebook:
    input:
        notebook=config["report"]["notebook"],
        summary=RESULTS / "analyze" / "summary.json",
        groups=RESULTS / "analyze" / "groups.h5",
        baselines=RESULTS / "baselines" / "baselines.json",
        controls=RESULTS / "controls" / "controls.json",
    output:
        report(
            RESULTS / "report" / "void_cluster_findings.ipynb",
            category="Notebook",
            labels={"file": "void_cluster_findings.ipynb"},
        ),
    log:
        LOGS / "report" / "notebook.log",
    benchmark:
        LOGS / "benchmarks" / "report" / "notebook.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        analysis=lambda wildcards, input: Path(input.summary).parent,
        baselines=lambda wildcards, input: Path(input.baselines).parent,
        controls=lambda wildcards, input: Path(input.controls).parent,
        kernel=config["report"]["kernel"],
        # papermill saves the notebook while it runs; the rename makes the output all-or-nothing.
        partial=lambda wildcards, output: Path(output[0]).with_suffix(".partial.ipynb"),
    shell:
        "papermill {input.notebook:q} {params.partial:q} --kernel {params.kernel}"
        " -r analysis_dir {params.analysis:q} -r baselines_dir {params.baselines:q}"
        " -r controls_dir {params.controls:q} --no-progress-bar > {log} 2>&1"
        " && mv {params.partial:q} {output:q}"
