"""Learnware specifications: semantic specs, RKME statistical specs (table, image, text), MMD math, JSON I/O.

Formats follow the reference ``learnware`` package (v0.4) so its files load here
and ours load there.
"""

from lwm.learnware.semantic import (
    SEMANTIC_SPEC_CONFIG,
    SemanticSpecError,
    allowed_values,
    check_semantic_spec,
    check_user_semantic_spec,
    generate_semantic_spec,
    semantic_spec_config,
    validate_semantic_spec,
)
from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE, TABLE_SPEC_TYPE, TEXT_SPEC_TYPE

from .device import resolve_device
from .hetero.spec import HeteroMapTableSpecification
from .image import RKMEImageSpecification
from .kernels import mmd_to_many, rbf_kernel, rkhs_inner_product, self_inner_products
from .nngp import convnet_nngp_kernel
from .rkme import RKMETableSpecification, generate_rkme_table_spec
from .statistical import StatSpecification, generate_stat_spec, load_stat_spec
from .text import EMBEDDER, REFERENCE_EMBEDDER, RKMETextSpecification

__all__ = [
    "HeteroMapTableSpecification",
    "EMBEDDER",
    "IMAGE_SPEC_TYPE",
    "LEGACY_TABLE_SPEC_TYPE",
    "REFERENCE_EMBEDDER",
    "RKMEImageSpecification",
    "RKMETableSpecification",
    "RKMETextSpecification",
    "SEMANTIC_SPEC_CONFIG",
    "SemanticSpecError",
    "StatSpecification",
    "TABLE_SPEC_TYPE",
    "TEXT_SPEC_TYPE",
    "allowed_values",
    "check_semantic_spec",
    "check_user_semantic_spec",
    "convnet_nngp_kernel",
    "generate_rkme_table_spec",
    "generate_semantic_spec",
    "generate_stat_spec",
    "load_stat_spec",
    "mmd_to_many",
    "rbf_kernel",
    "resolve_device",
    "rkhs_inner_product",
    "self_inner_products",
    "semantic_spec_config",
    "validate_semantic_spec",
]
