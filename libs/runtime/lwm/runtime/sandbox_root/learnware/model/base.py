"""The reference's model interface (learnware.model.base.BaseModel)."""

from typing import Any


class BaseModel:
    """Base class of a learnware's model: set the shapes, implement predict (fit/finetune optional)."""

    def __init__(self, input_shape: tuple, output_shape: tuple):
        self.input_shape = input_shape
        self.output_shape = output_shape

    def predict(self, X: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement predict")

    def fit(self, X: Any, y: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement fit")

    def finetune(self, X: Any, y: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement finetune")

    def get_model(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_model")
