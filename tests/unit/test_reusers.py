from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from lwm.services.reuse.reusers import average


def test_mean_of_regressors() -> None:
    out = average([np.array([1.0, 2.0]), np.array([[3.0], [4.0]])], "mean")
    np.testing.assert_allclose(out, [2.0, 3.0])


def test_vote_by_label_uses_argmax_of_scores() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([0, 1])
    c = np.array([1, 1])
    np.testing.assert_array_equal(average([a, b, c], "vote_by_label"), [0, 1])


def test_vote_by_prob_is_mean_of_softmax() -> None:
    a = np.array([[2.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    np.testing.assert_allclose(average([a, b], "vote_by_prob"), (softmax(a, axis=1) + softmax(b, axis=1)) / 2)


def test_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        average([np.zeros(2)], "median")
    with pytest.raises(ValueError, match="rows"):
        average([np.zeros(2), np.zeros(3)], "mean")
    with pytest.raises(ValueError, match="classes"):
        average([np.zeros((2, 2)), np.zeros((2, 3))], "vote_by_prob")
