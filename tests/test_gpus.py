"""GPU pinning: each model job gets its own devices (simulated device lists; no GPU needed)."""

import fcntl
import os
import signal
import subprocess
import sys

import pytest

from vlmflow import gpus


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("VLMFLOW_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    while gpus._held:
        gpus._held.pop().close()


def hold(tmp_path, device):
    fh = open(tmp_path / f"gpu{device}.lock", "w")
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fh


def test_a_job_without_gpus_sees_none():
    assert gpus.claim(0) == "cpu" and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_a_job_takes_a_device_no_other_job_holds(tmp_path):
    other = hold(tmp_path, "0")  # another job runs on GPU 0
    assert gpus.claim(1, devices=["0", "1", "2"]) == "cuda"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    other.close()


def test_two_gpu_job_and_waiting_for_a_free_device(tmp_path):
    a, b = hold(tmp_path, "0"), hold(tmp_path, "1")
    # every device busy: the claim waits, and takes a device once its job ends
    code = (
        "import sys; from vlmflow import gpus; gpus.claim(2, wait_s=0.1, devices=['0', '1', '2']);"
        "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "VLMFLOW_GPU_LOCK_DIR": str(tmp_path)},
    )
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.5)
    b.close()
    out, _ = proc.communicate(timeout=30)
    assert out.split()[-1] == "1,2"
    a.close()


def test_a_killed_job_frees_its_device(tmp_path):
    code = (
        "from vlmflow import gpus; import os, signal; gpus.claim(1, devices=['0']); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "VLMFLOW_GPU_LOCK_DIR": str(tmp_path)}
    )
    assert res.returncode == -signal.SIGKILL
    assert gpus.claim(1, wait_s=0.1, devices=["0"]) == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_too_few_gpus_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs 2 GPU"):
        gpus.claim(2, devices=["0"])


def test_slurm_allocation_is_kept(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpus.claim(1) == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
