"""`learnware.model` as learnware zips import it."""

from .base import BaseModel
from .torch_model import TorchModel

__all__ = ["BaseModel", "TorchModel"]
