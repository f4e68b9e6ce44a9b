"""The checks a learnware must pass to be USABLE, shared by the checker service and `lwm pack`."""

from .checks import PREDICT_ROWS, CheckFailed, check_learnware, semantic_problems

__all__ = ["PREDICT_ROWS", "CheckFailed", "check_learnware", "semantic_problems"]
