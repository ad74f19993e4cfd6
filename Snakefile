# vlmflow: where does information flow inside a VideoLLM? (Kim, Kim & Han, ICLR 2026)
# Stages: dataset -> frames -> features -> knockouts -> figures/tables. All logic lives in the
# package src/vlmflow; rules are thin wrappers. See README.md.
from snakemake.utils import min_version

from vlmflow.settings import read_config

min_version("9.0")


configfile: "config.yaml"


# the one reading of the settings (validated against workflow/schemas/config.schema.yaml, which fills
# in the defaults; `setting: paper | custom` applied): every rule reads S, never the raw config
S = read_config(config, workflow.overwrite_configfiles)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/knockout.smk"
include: "workflow/rules/pathways.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/answers.smk"
include: "workflow/rules/open_ended_flow.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/benchmark.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
