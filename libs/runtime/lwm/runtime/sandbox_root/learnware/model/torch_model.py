"""The reference's `TorchModel` wrapper; torch itself is only needed by the learnware's own code."""

from typing import Any


class TorchModel:
    """Holds an nn.Module and the learnware's shapes (the reference's interface)."""

    def __init__(self, model: Any, input_shape: tuple, output_shape: tuple):
        self._model = model
        self.input_shape = input_shape
        self.output_shape = output_shape

    @property
    def nn_model(self) -> Any:
        return self._model

    def predict(self, X: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement predict")

    def fit(self, X: Any, y: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement fit")

    def finetune(self, X: Any, y: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement finetune")
