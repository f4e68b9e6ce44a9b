"""Import stand-in for torchvision, for running the reference package's image spec here.

There is no CPU build of torchvision for torch 2.13.0 on this machine, and the
reference's RKMEImageSpecification imports ``torchvision.transforms.Resize``
inside generate_stat_spec_from_data. Resize on a tensor is bilinear
interpolation with antialiasing, which torch has; callers put this folder on
sys.path only after importing ``learnware`` (transformers probes torchvision
at import time) and feed 32 x 32 images, so the reference never resizes.
"""
