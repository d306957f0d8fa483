# Stage 6: the findings notebook executed headless (papermill) on this run's outputs (with
# nulls.gaussian_maps, the Gaussian-maps null's comparison too), then rendered to HTML
# (nbconvert) so it opens in a browser without Jupyter.
# `snakemake --report report.html` afterwards gathers every output marked with report(); the
# notebook enters it as that HTML page (the .ipynb itself would show as raw JSON).


rule notebook:
    input:
        unpack(lambda wildcards: gaussian_input()),
        notebook=config["report"]["notebook"],
        summary=RESULTS / "analyze" / "summary.json",
        groups=RESULTS / "analyze" / "groups.h5",
        baselines=RESULTS / "baselines" / "baselines.json",
        controls=RESULTS / "controls" / "controls.json",
    output:
        RESULTS / "report" / "void_cluster_findings.ipynb",
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
        gaussian=gaussian_flag,
        # papermill saves the notebook while it runs; the rename makes the output all-or-nothing.
        partial=lambda wildcards, output: Path(output[0]).with_suffix(".partial.ipynb"),
    shell:
        "papermill {input.notebook:q} {params.partial:q} --kernel {params.kernel}"
        " -r analysis_dir {params.analysis:q} -r baselines_dir {params.baselines:q}"
        " -r controls_dir {params.controls:q} {params.gaussian}"
        " --no-progress-bar --log-output 2>&1 | tee {log}"
        " && mv {params.partial:q} {output:q}"


rule notebook_html:
    input:
        RESULTS / "report" / "void_cluster_findings.ipynb",
    output:
        report(
            RESULTS / "report" / "void_cluster_findings.html",
            category="Notebook",
            labels={"file": "void_cluster_findings.html"},
        ),
    log:
        LOGS / "report" / "notebook_html.log",
    benchmark:
        LOGS / "benchmarks" / "report" / "notebook_html.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        outdir=lambda wildcards, output: Path(output[0]).parent,
        # nbconvert adds ".html" to --output; the rename makes the output all-or-nothing.
        name=lambda wildcards, output: Path(output[0]).stem + ".partial",
        partial=lambda wildcards, output: Path(output[0]).with_suffix(".partial.html"),
    shell:
        "jupyter nbconvert --to html --output-dir {params.outdir:q}"
        " --output {params.name:q} {input:q} 2>&1 | tee {log}"
        " && mv {params.partial:q} {output:q}"
