"""Holding a named lease of the organizer (AcquireLease) for background work that one process does at a time.

A `LeaseKeeper` asks for its lease at start, then every ttl/3: a holder renews, the others
retry, so when a holder dies its lease lapses and another process takes it within
ttl + ttl/3. The keeper counts itself the holder only until ttl after it sent its last
granted request (the organizer's expiry is later than that), so while the organizer cannot
be reached it stops counting itself the holder before anyone else can be granted the lease.
Writes that must come from the holder carry `fence()`, which the organizer checks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import grpc

from lwm.rpc.learnware.v1 import organizer_pb2, organizer_pb2_grpc

log = logging.getLogger(__name__)


def process_holder_name() -> str:
    """A holder name unique to this process: host, pid and a random part (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Keeps asking for one lease; `epoch()` is the epoch of the holding while this process has it."""

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, name: str, ttl_s: float, holder: str = "", on_change: Callable[[int | None], None] | None = None) -> None:
        if ttl_s <= 0:
            raise ValueError(f"a lease's ttl must be positive, got {ttl_s}")
        self.organizer = organizer
        self.name = name
        self.ttl_s = ttl_s
        self.holder = holder or process_holder_name()
        self.on_change = on_change  # called with the new epoch (None: lost) when the holding changes
        # A slow answer still counts from when it was asked, so waiting longer than the renewal period is harmless.
        self._call_timeout_s = max(5.0, ttl_s / 3)
        self._epoch: int | None = None
        self._valid_until = 0.0  # monotonic
        self._lock = threading.Lock()
        self._asking = threading.Lock()  # one request at a time, so an older answer never overwrites a newer one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    def epoch(self) -> int | None:
        """The epoch of this process's holding, or None if it does not hold the lease (or cannot be sure it does)."""
        with self._lock:
            return self._epoch if self._epoch is not None and time.monotonic() < self._valid_until else None

    def fence(self) -> organizer_pb2.LeaseFence | None:
        """The fencing token of this process's holding, for a write only the holder may make; None if it does not hold it."""
        epoch = self.epoch()
        return None if epoch is None else organizer_pb2.LeaseFence(name=self.name, holder=self.holder, epoch=epoch)

    def take_over(self) -> organizer_pb2.LeaseFence:
        """Take the lease now, even from a live holder; the new holding's fence (gRPC errors of the organizer propagate)."""
        epoch = self._ask(take_over=True)
        assert epoch is not None  # a take-over is always granted
        return organizer_pb2.LeaseFence(name=self.name, holder=self.holder, epoch=epoch)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release the lease if held, so another process can take it at once."""
        self._stop.set()
        self._thread.join(timeout=self._call_timeout_s)
        with self._lock:
            held, self._epoch = self._epoch is not None, None
        if held:
            try:
                self.organizer.ReleaseLease(organizer_pb2.ReleaseLeaseRequest(name=self.name, holder=self.holder), timeout=self._call_timeout_s)
            except grpc.RpcError as error:
                log.warning("could not release lease %s (it lapses in at most %.0f s): %s", self.name, self.ttl_s, error.details() if isinstance(error, grpc.Call) else error)

    def _ask(self, take_over: bool = False) -> int | None:
        request = organizer_pb2.AcquireLeaseRequest(name=self.name, holder=self.holder, ttl_s=self.ttl_s, take_over=take_over)
        with self._asking:
            sent = time.monotonic()
            reply = self.organizer.AcquireLease(request, timeout=self._call_timeout_s)
            return self._answered(reply, sent)

    def _answered(self, reply: organizer_pb2.AcquireLeaseResponse, sent: float) -> int | None:
        with self._lock:
            before = self._epoch if time.monotonic() < self._valid_until else None
            self._epoch = reply.epoch if reply.granted else None
            if reply.granted:
                self._valid_until = sent + self.ttl_s
            after = self._epoch
        if after != before:
            if after is None:
                log.info("lease %s is held by %s (epoch %d)", self.name, reply.holder or "nobody", reply.epoch)
            else:
                log.info("lease %s taken by %s (epoch %d)", self.name, self.holder, after)
            if self.on_change is not None:
                self.on_change(after)
        return after

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._ask()
            except grpc.RpcError as error:  # the organizer is unreachable: epoch() turns None when the holding runs out
                log.warning("lease %s: the organizer did not answer (%s)", self.name, error.details() if isinstance(error, grpc.Call) else error)
            self._stop.wait(self.ttl_s / 3)
