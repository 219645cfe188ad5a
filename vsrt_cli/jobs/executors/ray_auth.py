"""Token authentication for the Ray instance vsrt starts on this machine (``--workers``,
``--devices`` without ``--ray``). Its GCS, raylet and workers listen on every interface, and Ray's
control plane runs whatever a connected driver submits: without a token, anyone on the network
could run code here for the length of a batch. Ray >= 2.52 requires a token when
``RAY_AUTH_MODE=token``; Ray 2.59 turned it on by default for local instances, but an older Ray
or ``RAY_AUTH_MODE=disabled`` would leave it off. (A cluster vsrt joins with ``--ray`` is set up
by whoever started it: README, "More than one device".)
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from vsrt_cli.errors import ConfigError

TOKEN_AUTH = (2, 52)  # the first Ray whose instances can require a token (RAY_AUTH_MODE=token)
_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def require_token(ray: Any, extra: str) -> dict[str, str | None]:
    """Turn Ray's token authentication on for the instance about to start here, with a secret of
    this run's alone (not written anywhere; Ray passes it to the processes it starts), whatever
    this Ray's default or the environment says: its GCS, raylet and workers listen on every
    interface, and a driver that connects runs any code. Returns the environment to give back
    (:func:`restore_auth`) once the instance is shut down."""
    version = tuple(int(part) for part in ray.__version__.split(".")[:2] if part.isdigit())
    if version < TOKEN_AUTH:
        raise ConfigError(
            f"Ray {ray.__version__} cannot require a token of the workers it starts (Ray 2.52 or newer can), "
            f"so anyone on this network could run code on this machine during the batch; {extra} --upgrade"
        )
    saved = {name: os.environ.get(name) for name in _AUTH_ENV}
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_urlsafe(32)
    _reload_auth()
    return saved


def restore_auth(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _reload_auth()


def _reload_auth() -> None:
    """Ray reads the authentication variables once per process; read them again (as Ray's own
    ``ray.init`` does when it turns authentication on by default)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def refused(address: str, exc: Exception) -> ConfigError:
    """The one line for a cluster that answered but would not take this driver: most often one
    that requires a token this machine does not have."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ConfigError(
        f"--ray {address}: the Ray cluster there refused this driver ({type(exc).__name__}: {first}); a cluster "
        "started with token authentication needs RAY_AUTH_MODE=token here too, and its token in ~/.ray/auth_token, "
        "RAY_AUTH_TOKEN or the file RAY_AUTH_TOKEN_PATH names"
    )
