"""Loading a model by hub name fails at once, from the local cache, when the hub is out of
reach (no network needed: the probe goes to a closed port of this machine)."""
import socket

import pytest

from mmkgc_pyg.builders import hub
from mmkgc_pyg.errors import InputError

constants = pytest.importorskip("huggingface_hub.constants",
                                reason="huggingface_hub (text or vision extra) is not installed")


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset and no proxy, so the probe decides."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: nothing listens there


def test_reasons(online, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert hub.hub_unreachable() == "127.0.0.1: Connection refused"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_unreachable() == "HF_HUB_OFFLINE is set"


def test_a_listening_hub_is_reachable(online, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.hub_unreachable() is None


def test_without_the_hub_only_the_cache_is_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = []

    def load(local_files_only):
        asked.append(local_files_only)
        if local_files_only:
            raise OSError("not in the cache")
        return "model"

    with pytest.raises(InputError) as exc:
        hub.load_from_folder_or_hub("org/name", load, "; try X")
    assert str(exc.value) == ("org/name: expected a local model folder, or a hub model in "
                              "the local cache while the Hugging Face hub is unreachable "
                              "(HF_HUB_OFFLINE is set), got a hub name that is not cached; "
                              "try X")
    assert hub.load_from_folder_or_hub(str(tmp_path), load) == "model"  # a folder: as is
    assert asked == [True, False]
