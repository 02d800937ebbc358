"""``gns.allocator``: glibc's thresholds raised so large tensors reuse freed memory (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gns.allocator import _glibc

REPO = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")

# Allocates and frees a 40 MB tensor 20 times and counts the minor page faults of the loop.
FAULTS = r"""
import json, resource, sys, torch
from gns.allocator import tune_allocator
applied = tune_allocator()
for _ in range(3):                           # the heap's first growth out of the count
    torch.empty(10_000_000).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.empty(10_000_000).fill_(1.0)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _run(code: str, *args: str, tune: str = "1") -> dict:
    env = dict(os.environ, GNS_TUNE_ALLOCATOR=tune, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_process_reuses_freed_memory_instead_of_faulting_it_in_again():
    default = _run(FAULTS, tune="0")
    tuned = _run(FAULTS, tune="1")
    assert default["applied"] is None
    assert tuned["applied"]["mmap_threshold"] >= 32 * 2**20
    # glibc's defaults: each fresh 40 MB mmap faults in its ~10k pages, 20 times over; tuned: freed heap pages serve
    # the rest (measured 0-2 tensors' pages in all, depending on the heap's state)
    assert default["faults"] > 20 * 5_000
    assert tuned["faults"] < default["faults"] / 5


@glibc_only
def test_once_per_process_and_switched_off_by_the_environment():
    code = ("import json; from gns.allocator import tune_allocator; a = tune_allocator(); "
            "b = tune_allocator(mmap_threshold=2**20); print(json.dumps([a, b]))")
    first, second = _run(code)
    assert first == second and first["trim_threshold"] == 2**30   # the second call changes nothing
    assert _run(code, tune="0") == [None, None]


@glibc_only
def test_the_command_line_tunes_its_process_but_not_for_training(bouncing_dataset, tmp_path):
    code = ("import json, sys; from gns.cli import main; import gns.allocator as a; "
            "main(sys.argv[1:]); print(json.dumps(a._applied))")
    assert _run(code, "inspect", str(bouncing_dataset))["mmap_threshold"] >= 32 * 2**20
    assert _run(code, "inspect", str(bouncing_dataset), tune="0") is None
    train = ["train", "--dataset", str(bouncing_dataset), "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu",
             "--set", "model.latent_size=8", "--set", "model.message_passing_steps=1", "--set", "train.steps=2",
             "--set", "train.valid_rollout_steps=2"]
    assert _run(code, *train) is None     # training measured no faster with it (gns/allocator.py)


def test_a_setting_outside_a_c_int_is_an_error_naming_it():
    from gns.allocator import tune_allocator

    with pytest.raises(ValueError, match="trim_threshold must be 0 to 2147483647 bytes, got 1099511627776"):
        tune_allocator(trim_threshold=2**40)    # ctypes would pass it on wrapped to 0
    with pytest.raises(ValueError, match="mmap_threshold"):
        tune_allocator(mmap_threshold=-1)
