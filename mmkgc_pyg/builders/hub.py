r"""Models from a local folder or the Hugging Face hub, failing fast without the hub.

Given a hub name, the hub clients retry an unreachable hub for over a minute before they
fail. So the builders ask first (:func:`hub_unreachable`): when ``HF_HUB_OFFLINE`` is
set, or one connection to the hub (``HF_ENDPOINT``) fails within
:data:`PROBE_TIMEOUT_S` seconds, a hub name is loaded from the local hub cache only, and
one that is not cached fails at once (:func:`load_from_folder_or_hub`). With a proxy in
the environment the connection is left to the clients, which know how to use it.
"""
import os
import socket
from pathlib import Path
from typing import Callable, Optional, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies

from mmkgc_pyg.errors import InputError

PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}  # the values huggingface_hub reads as true
Model = TypeVar("Model")


def hub_unreachable() -> Optional[str]:
    r"""Why the Hugging Face hub cannot be reached now, or ``None`` when it may be."""
    from huggingface_hub import constants  # installed with the text and vision extras

    # The hub reads HF_HUB_OFFLINE once, on import; the variable may have been set since.
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    if "https" in getproxies():
        return None
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), PROBE_TIMEOUT_S).close()
    except OSError as e:
        return f"{url.hostname}: {e.strerror or str(e) or type(e).__name__}"
    return None


def load_from_folder_or_hub(model: str, load: Callable[[bool], Model], hint: str = "") -> Model:
    r"""``load(local_files_only)`` for ``model``, a local folder or a hub name; without
    the hub, a hub name comes from the local cache or fails at once with an
    :class:`~mmkgc_pyg.errors.InputError` ending in ``hint`` (what works offline)."""
    why = None if Path(model).is_dir() else hub_unreachable()
    if why is None:
        return load(False)
    try:
        return load(True)
    except Exception:  # noqa: BLE001 - not in the cache, however the client says it
        raise InputError(f"{model}: expected a local model folder, or a hub model in the "
                         f"local cache while the Hugging Face hub is unreachable ({why}), "
                         f"got a hub name that is not cached{hint}") from None
