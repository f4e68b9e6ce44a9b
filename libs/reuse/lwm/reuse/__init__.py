"""Reusing learnwares: the job selector, averaging, ensemble pruning, feature augmentation
(reusers.py) and hetero alignment of learnwares with other columns (align.py).

Used by the reuse service and by the SDK's local reuse of sandboxed learnwares.
"""
