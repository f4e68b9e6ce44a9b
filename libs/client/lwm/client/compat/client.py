"""Beimingwu's Python client (`learnware.client.LearnwareClient`) over this market's gateway.

    from lwm.client.compat import LearnwareClient, LearnwaresContainer

    client = LearnwareClient()              # host: the gateway address, default env LWM_MARKET
    client.login(email, token)              # token: an API token of this market (`lwm admin token create`)
    learnware_id = client.upload_learnware("model.zip", semantic_spec)
    results = client.search_learnware(BaseUserInfo(semantic_spec=..., stat_info={"RKMETableSpecification": spec}))
    learnwares = client.load_learnware(learnware_id=results["single"]["learnware_ids"][:3])

Where the market differs from Beimingwu's web backend:

- `login` keeps the email only as a record (`client.email`); the token alone
  authenticates (sent as `authorization: Bearer <token>`). Calls that change the
  market (upload, update, delete) and `list_learnware` need a login, as in the
  reference; searching and downloading work without one wherever the market allows
  anonymous callers.
- A learnware's model never runs in the caller's process: `load_learnware` returns
  learnwares whose model runs in a sandbox of lwm.runtime, in an environment built
  from the learnware's requirements. runnable_option "conda" starts it at once with
  the configured sandbox (LWM_SANDBOX, default bubblewrap), "docker" in a container
  (LWM_SANDBOX_DOCKER_IMAGE); None starts it with the configured sandbox on first use.
- `check_learnware` runs the market's own checks here (lwm-checks, as `lwm pack`)
  and raises LearnwareCheckError, with the report, when the learnware is not USABLE.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lwm.client.compat.market import BaseUserInfo
from lwm.client.errors import MarketError, require_distribution
from lwm.client.market import DEFAULT_MARKET, Learnware, MarketClient
from lwm.client.retry import NO_RETRY
from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.semantic import allowed_values, check_semantic_spec

if TYPE_CHECKING:
    from lwm.client.reuse import LocalLearnware
    from lwm.rpc.learnware.v1 import common_pb2
    from lwm.runtime.sandbox import SandboxConfig

__all__ = ["LearnwareCheckError", "LearnwareClient", "LearnwaresContainer", "LoadedLearnware", "SemanticSpecificationKey"]

logger = logging.getLogger(__name__)

RUNNABLE_OPTIONS = ("conda", "docker")
F = TypeVar("F", bound=Callable[..., Any])


class SemanticSpecificationKey(Enum):
    """The semantic spec keys whose allowed values `list_semantic_specification_values` gives (reference names)."""

    DATA_TYPE = "Data"
    TASK_TYPE = "Task"
    LIBRARY_TYPE = "Library"
    SENARIOES = "Scenario"
    LICENSE = "License"


class LearnwareCheckError(Exception):
    """A learnware failed the market's checks; `report` is the check report (a CheckReport message)."""

    def __init__(self, message: str, report: common_pb2.CheckReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def sandbox_for(runnable_option: str | None) -> SandboxConfig:
    """The sandbox a runnable option maps to: the configured one (LWM_SANDBOX*), or a docker container for "docker"."""
    if runnable_option is not None and runnable_option not in RUNNABLE_OPTIONS:
        raise ValueError(f"runnable_option must be one of {list(RUNNABLE_OPTIONS)} or None, got {runnable_option!r}")
    require_distribution("lwm.runtime", "'lwm-client[local]'", "running a learnware on this machine")
    from lwm.runtime.sandbox import SandboxConfig

    configured = SandboxConfig.from_env()
    return dataclasses.replace(configured, isolation="docker") if runnable_option == "docker" else configured


class LoadedLearnware:
    """A learnware from LearnwareClient.load_learnware: `id`, its semantic spec, `predict` run in a sandbox.

    The model starts on first use (or when `start` or a LearnwaresContainer starts
    it); `close` stops it. It has what the reusers of lwm.client.compat need.
    """

    def __init__(self, learnware_id: str, zip_path: Path, semantic_spec: dict[str, Any], sandbox: SandboxConfig | None = None) -> None:
        self.id = learnware_id
        self.zip_path = zip_path
        self.semantic_spec = semantic_spec
        self.sandbox = sandbox
        self._local: LocalLearnware | None = None
        self._lock = threading.Lock()

    def start(self, sandbox: SandboxConfig | None = None) -> LocalLearnware:
        """Start the model (once) in `sandbox` (default: the one it was loaded with, else the configured one)."""
        with self._lock:
            if self._local is None:
                require_distribution("lwm.runtime", "'lwm-client[local]'", "running a learnware on this machine")
                from lwm.client.reuse import load_learnware  # imports torch (specs): only when used

                self.sandbox = sandbox or self.sandbox or sandbox_for(None)
                self._local = load_learnware(self.zip_path, self.id, sandbox=self.sandbox)
            return self._local

    @property
    def started(self) -> bool:
        return self._local is not None

    def get_semantic_spec(self) -> dict[str, Any]:
        return self.semantic_spec

    @property
    def stat_spec(self) -> Any:
        return self.start().stat_spec

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.start().predict(X)

    def close(self) -> None:
        with self._lock:
            if self._local is not None:
                self._local.close()
                self._local = None

    def __repr__(self) -> str:
        return f"LoadedLearnware(id={self.id!r}, started={self.started})"


class LearnwaresContainer:
    """Starts learnwares in sandboxes on enter and stops them on exit (the reference's LearnwaresContainer).

    mode "conda": the configured sandbox with the environment built from the
    learnware's requirements; "docker": a docker container. With ignore_error=True a
    learnware that fails to start is left out of get_learnwares_with_container() (its
    flag is False) and a warning is logged; else the error is raised. cleanup=False
    leaves the started learnwares running after the block (close them yourself).
    """

    def __init__(self, learnwares: LoadedLearnware | Sequence[LoadedLearnware], cleanup: bool = True, mode: str = "conda", ignore_error: bool = True) -> None:
        if mode not in RUNNABLE_OPTIONS:
            raise ValueError(f"mode must be one of {list(RUNNABLE_OPTIONS)}, got {mode!r}")
        self.learnware_list = [learnwares] if isinstance(learnwares, LoadedLearnware) else list(learnwares)
        for learnware in self.learnware_list:
            if not isinstance(learnware, LoadedLearnware):
                raise TypeError(f"LearnwaresContainer takes the learnwares of LearnwareClient.load_learnware, got {type(learnware).__name__}")
        self.mode = mode
        self.cleanup = cleanup
        self.ignore_error = ignore_error
        self.results: list[bool] = []

    def _start(self, learnware: LoadedLearnware) -> bool:
        try:
            learnware.start(sandbox_for(self.mode))
        except Exception as error:
            if not self.ignore_error:
                raise
            logger.warning("learnware %s could not be started (%s sandbox): %s", learnware.id, self.mode, error)
            return False
        return True

    def __enter__(self) -> LearnwaresContainer:
        self.results = [self._start(learnware) for learnware in self.learnware_list]
        failed = len(self.results) - sum(self.results)
        if failed:
            logger.warning("%d of %d learnwares could not be started; they are left out", failed, len(self.results))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.cleanup:
            for learnware in self.learnware_list:
                learnware.close()

    def get_learnware_flags(self) -> list[bool]:
        return list(self.results)

    def get_learnwares_with_container(self) -> list[LoadedLearnware]:
        return [learnware for learnware, started in zip(self.learnware_list, self.results) if started]


def require_login(method: F) -> F:
    def wrapper(self: LearnwareClient, *args: Any, **kwargs: Any) -> Any:
        if not self.is_login():
            raise PermissionError(f"{method.__name__} needs a login: call login(email, token) with an API token of the market first")
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper  # type: ignore[return-value]


def _check_semantic(semantic_specification: dict[str, Any]) -> None:
    problems = check_semantic_spec(semantic_specification)
    if problems:
        raise ValueError("semantic specification check failed: " + "; ".join(problems))


def _learnware_info(learnware: Learnware) -> dict[str, Any]:
    return {
        "learnware_id": learnware.id,
        "semantic_specification": learnware.semantic_spec,
        "status": learnware.status,
        "owner": learnware.owner,
        "stat_spec_types": list(learnware.stat_spec_types),
        "check_report": learnware.check_report,
        "zip_size": learnware.zip_size,
        "zip_sha256": learnware.zip_sha256,
    }


class LearnwareClient:
    """Beimingwu's LearnwareClient API on a market's gateway at `host` (default env LWM_MARKET, else 127.0.0.1:50051).

    `client_options` go to MarketClient (timeout_s, tls_ca, retry); the token comes from `login`.
    """

    def __init__(self, host: str | None = None, **client_options: Any) -> None:
        if "token" in client_options:
            raise TypeError("LearnwareClient takes no token argument: call login(email, token)")
        self.host = host or os.environ.get("LWM_MARKET", DEFAULT_MARKET)
        self._client_options = client_options
        self.email: str | None = None
        self.login_status = False
        self._client = MarketClient(self.host, token="", **client_options)
        self._tempdir = Path(tempfile.mkdtemp(prefix="lwm-learnware-client-"))
        self._loaded: list[LoadedLearnware] = []
        atexit.register(self.cleanup)

    @property
    def market(self) -> MarketClient:
        """The MarketClient this client calls (with the login's token)."""
        return self._client

    def is_connected(self) -> bool:
        """Whether the market answers at `host` (asked once, without retries)."""
        probe = MarketClient(self.host, token="", **{**self._client_options, "retry": NO_RETRY})
        try:
            probe.market_info()
        except MarketError:
            return False
        finally:
            probe.close()
        return True

    def login(self, email: str, token: str) -> None:
        """Use `token` (an API token of the market) for every call; `email` is kept as `self.email`, not checked.

        The token is tried at once: a market with authentication on refuses a wrong
        one here (UnauthenticatedError).
        """
        if not token:
            raise ValueError("login needs an API token of the market (`lwm admin token create`)")
        client = MarketClient(self.host, token=token, seen_revision=self._client.seen_revision, **self._client_options)
        try:
            client.market_info()
        except BaseException:
            client.close()
            raise
        self._client.close()
        self._client, self.email, self.login_status = client, email, True

    def is_login(self) -> bool:
        return self.login_status

    @require_login
    def logout(self) -> None:
        self._client.close()
        self._client = MarketClient(self.host, token="", seen_revision=self._client.seen_revision, **self._client_options)
        self.email, self.login_status = None, False

    @require_login
    def upload_learnware(self, learnware_zip_path: str | os.PathLike[str], semantic_specification: dict[str, Any]) -> str:
        """Upload a learnware zip and return its id; the market checks it in the background (see get_learnware_info)."""
        _check_semantic(semantic_specification)
        return self._client.add_learnware(learnware_zip_path, semantic_specification, wait=False).id

    @require_login
    def update_learnware(self, learnware_id: str, semantic_specification: dict[str, Any], learnware_zip_path: str | os.PathLike[str] | None = None) -> None:
        """Replace a learnware's semantic specification."""
        if learnware_zip_path is not None:
            raise TypeError("update_learnware: learnware_zip_path is not supported, the market keeps a learnware's zip as checked; delete_learnware it and upload_learnware the new zip")
        _check_semantic(semantic_specification)
        self._client.update_learnware(learnware_id, semantic_specification)

    @require_login
    def delete_learnware(self, learnware_id: str) -> None:
        self._client.delete_learnware(learnware_id)

    @require_login
    def list_learnware(self) -> list[dict[str, Any]]:
        """The learnwares the login may list (a user's own; every one for an admin or without authentication)."""
        return [_learnware_info(learnware) for learnware in self._client.list_learnwares()]

    def get_semantic_specification(self, learnware_id: str) -> dict[str, Any]:
        return self._client.get_learnware(learnware_id).semantic_spec

    def get_learnware_info(self, learnware_id: str) -> dict[str, Any]:
        """learnware_id, semantic_specification, status (PENDING, USABLE, NONUSABLE, INVALID), owner, check_report, ..."""
        return _learnware_info(self._client.get_learnware(learnware_id))

    def download_learnware(self, learnware_id: str, save_path: str | os.PathLike[str]) -> None:
        self._client.download(learnware_id, save_path)

    def list_semantic_specification_values(self, key: SemanticSpecificationKey) -> list[str]:
        values = allowed_values(key.value)
        if values is None:
            raise ValueError(f"{key.value} takes free text, not values from a list")
        return values

    def search_learnware(self, user_info: BaseUserInfo, page_size: int | None = 10, page_index: int = 0) -> dict[str, Any]:
        """Search the market; the reference's result shape.

        {"single": {"learnware_ids", "semantic_specifications", "matching"}, "multiple":
        {"learnware_ids", "semantic_specifications", "matching"}}: single results of the
        page (`page_size` per page, None for all; "matching" their scores) and the best
        mixture (its learnwares and score). stat_info holds at most one specification.
        """
        if len(user_info.stat_info) > 1:
            raise ValueError(f"stat_info must hold at most one statistical specification, got {sorted(user_info.stat_info)}")
        if page_size is not None and page_size <= 0 or page_index < 0:
            raise ValueError(f"page_size must be positive (or None) and page_index not negative, got {page_size} and {page_index}")
        stat_spec = next(iter(user_info.stat_info.values()), None)
        if page_size is None:
            max_results = max(1, sum(self._client.market_info()["learnware_counts"].values()))
            begin, end = 0, max_results
        else:
            begin, end = page_index * page_size, (page_index + 1) * page_size
            max_results = end
        results = self._client.search_learnware(user_info.get_semantic_spec(), stat_spec, max_results=max_results)
        single = results.get_single_results()[begin:end]
        mixtures = results.get_multiple_results()
        mixture = mixtures[0] if mixtures else None
        return {
            "single": {
                "learnware_ids": [item.learnware.id for item in single],
                "semantic_specifications": [item.learnware.semantic_spec for item in single],
                "matching": [item.score for item in single],
            },
            "multiple": {
                "learnware_ids": [learnware.id for learnware in mixture.learnwares] if mixture else [],
                "semantic_specifications": [learnware.semantic_spec for learnware in mixture.learnwares] if mixture else [],
                "matching": mixture.score if mixture else None,
            },
        }

    def load_learnware(
        self,
        learnware_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        learnware_id: str | Sequence[str] | None = None,
        runnable_option: str | None = None,
    ) -> LoadedLearnware | list[LoadedLearnware]:
        """Learnwares from zip files or from the market by id (zip files first, as the reference).

        One learnware for one path or id, a list for a list. runnable_option: None
        (the model starts in the configured sandbox on first use), "conda" (started now
        in the configured sandbox, its environment built from its requirements) or
        "docker" (started now in a docker container).
        """
        sandbox = sandbox_for(runnable_option) if runnable_option is not None else None
        if learnware_path is None and learnware_id is None:
            raise ValueError("load_learnware needs learnware_path or learnware_id")
        if learnware_path is not None:
            single = isinstance(learnware_path, (str, os.PathLike))
            paths = [learnware_path] if isinstance(learnware_path, (str, os.PathLike)) else list(learnware_path)
            learnwares = [self._from_zip(Path(path), None, sandbox) for path in paths]
        else:
            assert learnware_id is not None
            single = isinstance(learnware_id, str)
            ids = [learnware_id] if isinstance(learnware_id, str) else list(learnware_id)
            learnwares = [self._from_market(one, sandbox) for one in ids]
        if runnable_option is not None:
            with LearnwaresContainer(learnwares, cleanup=False, mode=runnable_option, ignore_error=False):
                pass
        return learnwares[0] if single else learnwares

    def _from_market(self, learnware_id: str, sandbox: SandboxConfig | None) -> LoadedLearnware:
        info = self._client.get_learnware(learnware_id)
        self._tempdir.mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="download-", dir=self._tempdir))
        zip_path = self._client.download(learnware_id, folder / f"{learnware_id}.zip")
        return self._loaded_learnware(LoadedLearnware(learnware_id, zip_path, info.semantic_spec, sandbox))

    def _from_zip(self, path: Path, learnware_id: str | None, sandbox: SandboxConfig | None) -> LoadedLearnware:
        archive = LearnwareArchive.from_path(path)  # validated before it is copied
        self._tempdir.mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="zip-", dir=self._tempdir))
        zip_path = Path(shutil.copyfile(path, folder / path.name))
        # The reference names a learnware loaded from a zip by the yaml's id, else "test_id".
        name = learnware_id or str(archive.config.raw.get("id") or "test_id")
        return self._loaded_learnware(LoadedLearnware(name, zip_path, archive.semantic_spec() or {}, sandbox))

    def _loaded_learnware(self, learnware: LoadedLearnware) -> LoadedLearnware:
        self._loaded.append(learnware)
        return learnware

    @staticmethod
    def check_learnware(learnware_zip_path: str | os.PathLike[str], semantic_specification: dict[str, Any] | None = None, timeout_s: float = 120.0) -> common_pb2.CheckReport:
        """Run the market's checks on a learnware zip here (its model in the sandbox); the report when USABLE.

        semantic_specification defaults to the one the zip's learnware.yaml names.
        Raises LearnwareCheckError (with the report) when the learnware is not USABLE.
        """
        require_distribution("lwm.checks", "lwm-checks", "running the market's checks locally")
        from lwm.checks import check_learnware
        from lwm.rpc import convert

        zip_bytes = Path(learnware_zip_path).read_bytes()
        if semantic_specification is None:
            semantic_specification = LearnwareArchive.from_bytes(zip_bytes).semantic_spec()
            if semantic_specification is None:
                raise ValueError(f"{learnware_zip_path} names no semantic specification in learnware.yaml; pass semantic_specification")
        report = check_learnware(semantic_specification, zip_bytes, timeout_s=timeout_s)
        status = convert.STATUS_NAMES[report.status]
        if status != "USABLE":
            failed = [f"{step.name}: {'; '.join(step.messages)}" for step in report.steps if not step.passed]
            raise LearnwareCheckError(f"{learnware_zip_path} is {status}: {' | '.join(failed)}", report)
        return report

    @staticmethod
    def install_environment(learnware_zip_path: str | os.PathLike[str]) -> str:
        """Build (or take from the cache) the learnware's environment as the market does; its python's path.

        The environment comes from the zip's requirements.txt or environment.yaml
        (LWM_ENV_* settings); models of this learnware run with that python.
        """
        require_distribution("lwm.runtime", "'lwm-client[local]'", "building a learnware's environment")
        from lwm.runtime.environment import EnvironmentManager

        return EnvironmentManager().prepare(LearnwareArchive.from_path(Path(learnware_zip_path))).python

    def cleanup(self) -> None:
        """Stop the loaded learnwares and remove their downloaded zips."""
        for learnware in self._loaded:
            learnware.close()
        self._loaded.clear()
        shutil.rmtree(self._tempdir, ignore_errors=True)

    def close(self) -> None:
        self.cleanup()
        self._client.close()
        atexit.unregister(self.cleanup)

    def __enter__(self) -> LearnwareClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
