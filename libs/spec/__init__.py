"""Learnware specifications: semantic specs, RKME statistical specs, MMD math, JSON I/O.

Formats follow the reference ``learnware`` package (v0.4) so its files load here
and ours load there.
"""

from .kernels import mmd_to_many, rbf_kernel, self_inner_products
from .rkme import (
    LEGACY_TABLE_SPEC_TYPE,
    TABLE_SPEC_TYPE,
    RKMETableSpecification,
    generate_rkme_table_spec,
)
from .semantic import (
    SEMANTIC_SPEC_CONFIG,
    SemanticSpecError,
    allowed_values,
    check_semantic_spec,
    check_user_semantic_spec,
    generate_semantic_spec,
    semantic_spec_config,
    validate_semantic_spec,
)
from .statistical import generate_stat_spec, load_stat_spec

__all__ = [
    "LEGACY_TABLE_SPEC_TYPE",
    "RKMETableSpecification",
    "SEMANTIC_SPEC_CONFIG",
    "SemanticSpecError",
    "TABLE_SPEC_TYPE",
    "allowed_values",
    "check_semantic_spec",
    "check_user_semantic_spec",
    "generate_rkme_table_spec",
    "generate_semantic_spec",
    "generate_stat_spec",
    "load_stat_spec",
    "mmd_to_many",
    "rbf_kernel",
    "self_inner_products",
    "semantic_spec_config",
    "validate_semantic_spec",
]
