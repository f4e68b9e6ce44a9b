"""One thread for the small sequential numpy/scipy work of the spec fits.

For small matrices (a QP of 100 variables, a k-means++ pass over 1,000 rows) BLAS threads
only add overhead, and waking them on a busy machine can cost milliseconds per call.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

# Found once: threadpool_limits() looks the BLAS libraries up again on every call (~5 ms,
# more than the work it wraps; a search solves dozens of QPs).
_THREADPOOLS = ThreadpoolController()


def single_thread() -> AbstractContextManager[Any]:
    """Context manager: BLAS and OpenMP pools limited to one thread, restored on exit."""
    return _THREADPOOLS.limit(limits=1)
