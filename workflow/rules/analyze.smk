# Stage 5: what the trained SOP's groups are (void, cluster, other) and how much each parameter
# relies on them; the same test maps through captum baselines; controls with known answers.
# The science is in sop_cosmo.cosmo.stages (analyse, attribute, controls) and sop_cosmo.attribution.
# The analysis takes the SOP of every training seed (CIs over test cosmologies × seeds); the
# baselines explain the first seed's. With nulls.permuted_labels the analysis also takes the
# permuted-label null's summary (nulls.smk) and gates its claims on it (--null-summary).


rule analyze:
    input:
        unpack(lambda wildcards: null_input()),
        models=sop_models(),
        data=RESULTS / "patches" / "test.h5",
    output:
        summary=report(
            RESULTS / "analyze" / "summary.json",
            category="Analysis",
            labels={"file": "summary.json"},
        ),
        groups_csv=RESULTS / "analyze" / "groups.csv",
        groups_h5=RESULTS / "analyze" / "groups.h5",
        sweep=report(
            RESULTS / "analyze" / "threshold_sweep.csv",
            category="Analysis",
            labels={"file": "threshold_sweep.csv"},
        ),
        groups_gallery=report(
            RESULTS / "analyze" / "figures" / "groups_gallery.png",
            category="Analysis",
            labels={"figure": "groups_gallery"},
        ),
        contributions=report(
            RESULTS / "analyze" / "figures" / "contributions.png",
            category="Analysis",
            labels={"figure": "contributions"},
        ),
        weight_hist=report(
            RESULTS / "analyze" / "figures" / "weight_hist.png",
            category="Analysis",
            labels={"figure": "weight_hist"},
        ),
        sweep_png=report(
            RESULTS / "analyze" / "figures" / "threshold_sweep.png",
            category="Analysis",
            labels={"figure": "threshold_sweep"},
        ),
        predicted_png=report(
            RESULTS / "analyze" / "figures" / "predicted_vs_true.png",
            category="Analysis",
            labels={"figure": "predicted_vs_true"},
        ),
        importance_png=report(
            RESULTS / "analyze" / "figures" / "region_importance.png",
            category="Analysis",
            labels={"figure": "region_importance"},
        ),
    log:
        LOGS / "analyze" / "analyze.log",
    benchmark:
        LOGS / "benchmarks" / "analyze" / "analyze.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
    params:
        out=RESULTS / "analyze",
        checkpoints=lambda wildcards, input: checkpoint_flags(input.models),
        flags=flags("analyze", device=config["train"]["device"]),
        null=null_flag,
    shell:
        "sop-cosmo analyze {params.checkpoints} --data {input.data} --out {params.out}"
        " {params.flags} {params.null} 2>&1 | tee {log}"


rule baselines:
    input:
        model=sop_models()[0],
        data=RESULTS / "patches" / "test.h5",
    output:
        csv=report(
            RESULTS / "baselines" / "baselines.csv",
            category="Baselines",
            labels={"file": "baselines.csv"},
        ),
        json=RESULTS / "baselines" / "baselines.json",
        mse_vs_purity=report(
            RESULTS / "baselines" / "figures" / "mse_vs_purity.png",
            category="Baselines",
            labels={"figure": "mse_vs_purity"},
        ),
        insertion_deletion=report(
            RESULTS / "baselines" / "figures" / "insertion_deletion.png",
            category="Baselines",
            labels={"figure": "insertion_deletion"},
        ),
    log:
        LOGS / "baselines" / "baselines.log",
    benchmark:
        LOGS / "benchmarks" / "baselines" / "baselines.tsv"
    conda:
        "../envs/sop.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    params:
        out=RESULTS / "baselines",
        # The void/cluster typing is the analysis's, so purity is scored the same way.
        flags=flags("baselines", **THRESHOLDS, device=config["train"]["device"]),
    shell:
        "sop-cosmo baselines --checkpoint {input.model} --data {input.data} --out {params.out}"
        " {params.flags} 2>&1 | tee {log}"


rule controls:
    output:
        json=report(
            RESULTS / "controls" / "controls.json",
            category="Controls",
            labels={"file": "controls.json"},
        ),
        figure=report(
            RESULTS / "controls" / "figures" / "controls.png",
            category="Controls",
            labels={"figure": "controls"},
        ),
    log:
        LOGS / "controls" / "controls.log",
    benchmark:
        LOGS / "benchmarks" / "controls" / "controls.tsv"
    conda:
        "../envs/sop.yaml"
    # The controls' small models run fastest on one torch thread (docs/controls.md).
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out=RESULTS / "controls",
        flags=flags("controls"),
    shell:
        "sop-cosmo controls --out {params.out} {params.flags} --threads {threads}"
        " 2>&1 | tee {log}"
