import json
import struct
from dataclasses import replace
from types import SimpleNamespace

import huggingface_hub.constants
import pytest
import torch

from vlmflow.models import loading
from vlmflow.models.loading import check_model_path, content_hash, load_from_config, model_provenance
from vlmflow.provenance import Stamp
from vlmflow.settings import model_settings

HUB_MODEL = model_settings(
    "big-model", {"family": "llava_video", "path": "owner/name", "device": "cpu", "window": 3}
).load


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Run in an empty directory, the hub online, and record load_adapter's calls instead of loading."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    made = []
    monkeypatch.setattr(
        loading, "load_adapter", lambda family, path, **kw: made.append(path) or SimpleNamespace()
    )
    return made


@pytest.mark.parametrize("path", ["models/does-not-exist", "./x", "../x", "~/no-such-model-dir", "a/b/c"])
def test_missing_local_paths_are_errors(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(ValueError, match="model 'm': path .* local directory relative to the working") as err:
        check_model_path("m", path)
    assert "\n" not in str(err.value) and "config.yaml" in str(err.value)


def test_missing_absolute_path_names_the_resolved_directory(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "x")):
        check_model_path("m", str(tmp_path / "x"))


def test_hub_ids_and_existing_directories_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    check_model_path("m", "owner/name")  # no owner/ here: a hub id
    check_model_path("m", "models/m")
    check_model_path("m", str(tmp_path / "models" / "m"))


def test_hub_failure_is_one_line_naming_model_and_path(monkeypatch, calls):
    def fail(family, path, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setattr(loading, "load_adapter", fail)
    with pytest.raises(OSError) as err:
        load_from_config(HUB_MODEL, name="big-model")
    msg = str(err.value)
    assert "\n" not in msg and "'big-model'" in msg and "'owner/name'" in msg
    assert "not a local directory" in msg and "offline: no" in msg and "couldn't connect" in msg


def test_offline_hub_id_must_be_in_the_cache(monkeypatch, tmp_path, calls):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match=r"'big-model'.*'owner/name'.*offline: yes\): not in the cache"):
        load_from_config(HUB_MODEL, name="big-model")
    assert calls == []
    snapshot = tmp_path / "hf-cache" / "models--owner--name" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hf-cache" / "models--owner--name" / "refs").mkdir()
    (tmp_path / "hf-cache" / "models--owner--name" / "refs" / "main").write_text("a" * 40)
    assert load_from_config(HUB_MODEL, name="big-model").model_id == "owner/name"  # its provenance
    assert calls == ["owner/name"]


def test_missing_local_directory_is_not_looked_up_on_the_hub(tmp_path, calls):
    (tmp_path / "models").mkdir()
    with pytest.raises(ValueError, match="models/gone"):
        load_from_config(replace(HUB_MODEL, path="models/gone"), name="m")
    assert calls == []


def checkpoint(root):
    root.mkdir()
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub").mkdir()
    (root / "sub" / "w.bin").write_bytes(bytes(range(100)))
    (root / ".cache").mkdir()  # download metadata, not content
    (root / ".cache" / "meta").write_text("downloaded at 12:00")
    return root


def digest(root):
    content_hash.cache_clear()
    return content_hash(root.resolve())


def test_content_hash_changes_with_one_byte_only(tmp_path):
    root = checkpoint(tmp_path / "ckpt")
    h = digest(root)
    assert h.startswith("sha256:") and len(h) == len("sha256:") + 16
    assert digest(root) == h == digest(checkpoint(tmp_path / "copy"))
    (root / ".cache" / "meta").write_text("downloaded at 13:00")
    assert digest(root) == h
    (root / "sub" / "w.bin").write_bytes(bytes(range(99)) + b"\xff")
    assert digest(root) != h


def test_content_hash_reads_only_the_header_of_big_safetensors(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "BIG_FILE", 64)

    def write(header: dict, data: bytes):
        h = json.dumps(header).encode()
        (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + data)
        return digest(tmp_path)

    header = {"w": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]}}
    h = write(header, b"\0" * 128)
    assert write(header, b"\1" * 128) == h  # same size and header: weights are not read
    assert write({**header, "__metadata__": {"v": "2"}}, b"\0" * 128) != h


def test_provenance_keeps_the_configured_path_and_hashes_local_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint(tmp_path / "ckpt")
    model = SimpleNamespace(dtype=torch.float32, config=SimpleNamespace(_commit_hash=None))
    adapter = SimpleNamespace(
        model=model, grid=(8, 12, 12), dtype=torch.bfloat16, settings={"vision_attention": "per_frame"}
    )
    stamp = Stamp("eager", "fast", 8, "segments", 0)
    p = model_provenance(adapter, "ckpt", stamp)
    assert p["model_id"] == "ckpt" and p["model_revision"] == digest(tmp_path / "ckpt")
    assert p["dtype"] == "bfloat16"  # the adapter's dtype
    assert p["adapter_settings"] == '{"vision_attention": "per_frame"}'

    model.config._commit_hash = "c0ffee"
    p = model_provenance(adapter, "owner/name", stamp)
    assert (p["model_id"], p["model_revision"], p["dtype"]) == ("owner/name", "c0ffee", "bfloat16")
