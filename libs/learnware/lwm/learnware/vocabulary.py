"""The market's shared names, each spelled once: specification types, tasks, reuse methods.

Torch-free, so the gateway, the organizer and the thin client can use them.
"""

from __future__ import annotations

# Statistical specification types, as in the reference's JSON files ("type").
TABLE_SPEC_TYPE = "RKMETableSpecification"
LEGACY_TABLE_SPEC_TYPE = "RKMEStatSpecification"  # older reference files; read as a table spec
TABLE_SPEC_TYPES = (TABLE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE)
IMAGE_SPEC_TYPE = "RKMEImageSpecification"
TEXT_SPEC_TYPE = "RKMETextSpecification"
HETERO_SPEC_TYPE = "HeteroMapTableSpecification"
# What a user's search may carry (a hetero-map spec is made by the market, never sent).
USER_SPEC_TYPES = (TABLE_SPEC_TYPE, IMAGE_SPEC_TYPE, TEXT_SPEC_TYPE)

# Tasks of the reusers (the semantic spec's Task values are "Classification"/"Regression").
CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# Reuse methods and the averaging reuser's modes.
AVERAGING_MODES = ("mean", "vote_by_label", "vote_by_prob")
REUSE_METHODS = ("job_selector", "averaging", "ensemble_pruning", "feature_augment", "hetero_align")
# Those that fit a model on the user's numeric columns, so not on texts.
FEATURE_REUSE_METHODS = ("feature_augment", "hetero_align")
