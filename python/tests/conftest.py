"""Shared fixtures: small runs on the embedded demo data, each in its own temporary folder."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def recagent_bin() -> Path:
    """The CLI binary: $RECAGENT_BIN (set by .ci/run / run-tests.sh), else built with cargo."""
    env = os.environ.get("RECAGENT_BIN")
    if env and Path(env).is_file():
        return Path(env)
    subprocess.run(["cargo", "build", "--bin", "recagent"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "recagent"


class LowestUnseen:
    """Always the lowest-id items not shown to the user yet; records every call."""

    def __init__(self, item_ids):
        self.ids = sorted(item_ids)
        self.calls = []
        self.fits = []

    def recommend(self, user, k, exclude, history):
        seen = set(exclude)
        page = [i for i in self.ids if i not in seen][:k]
        self.calls.append((user, k, list(exclude), list(history), page))
        return page

    def fit(self, interactions):
        self.fits.append(len(interactions))


@pytest.fixture
def demo_item_ids():
    import csv

    with open(ROOT / "data" / "item.csv", newline="") as f:
        return [int(r["id"]) for r in csv.DictReader(f)]
