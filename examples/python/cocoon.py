"""The information-cocoon comparison from Python: a matrix factorisation written in numpy
against recagent's built-in MF (`rec_model: MF`), and the genre entropy of what the agents are
shown, round by round (RecAgent's cocoon study; `scenarios/information-cocoon.yaml` runs the
full version from the CLI).

    pip install ./python numpy matplotlib      # or: cd python && maturin develop
    python examples/python/cocoon.py           # -> output/python-cocoon/cocoon.png

Both recommenders run on the same seeded simulation (demo data by default; `--real` uses
RecAgent's 1,000 users from ../shared/data/recagent), with pages made only of the model's top
list (`rec_random_k: 0`) and habit-forming users (`offline.satiation_weight: -2`), the setting
in which a cocoon forms. A third curve mixes 2 random items into each page of the numpy model.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

import recagent


class NumpyMF:
    """BPR matrix factorisation in numpy: user and item factors, trained on every watch (a
    rated 1-2 watch counts as a negative) at each `fit`, scored by dot product."""

    def __init__(self, item_ids, dim=16, epochs=20, lr=0.05, reg=0.01, seed=0):
        self.items = np.array(sorted(item_ids))
        self.col = {int(i): c for c, i in enumerate(self.items)}
        self.dim, self.epochs, self.lr, self.reg = dim, epochs, lr, reg
        self.rng = np.random.default_rng(seed)
        self.U = {}
        self.V = self.rng.normal(0, 0.1, (len(self.items), dim))

    def _user(self, u):
        if u not in self.U:
            self.U[u] = self.rng.normal(0, 0.1, self.dim)
        return self.U[u]

    def fit(self, interactions):
        pos = [(r["user_id"], self.col[r["item_id"]]) for r in interactions if r["rating"] != 1 and r["rating"] != 2]
        if not pos:
            return
        pos = np.array(pos)
        n = len(self.items)
        for _ in range(self.epochs):
            for u, i in pos[self.rng.permutation(len(pos))]:
                j = self.rng.integers(n)
                pu, qi, qj = self._user(int(u)), self.V[i], self.V[j]
                x = pu @ (qi - qj)
                g = 1.0 / (1.0 + math.exp(min(x, 30.0)))  # d/dx log sigmoid(x)
                self.U[int(u)] = pu + self.lr * (g * (qi - qj) - self.reg * pu)
                self.V[i] = qi + self.lr * (g * pu - self.reg * qi)
                self.V[j] = qj + self.lr * (-g * pu - self.reg * qj)

    def recommend(self, user, k, exclude, history):
        scores = self.V @ self._user(user)
        if len(exclude):
            scores[[self.col[i] for i in exclude]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return [int(self.items[c]) for c in top if np.isfinite(scores[c])]


def run(name, out, base, **overrides):
    t = time.perf_counter()
    sim = recagent.Simulation.from_config(base, output_dir=out / name, overwrite=True, **overrides)
    sim.run(progress=False)
    rows = sim.metrics()
    print(f"{name:>26}: {len(rows)} rounds in {time.perf_counter() - t:5.1f} s; "
          f"entropy_shown {rows[0]['entropy_shown']:.3f} -> {rows[-1]['entropy_shown']:.3f}")
    return sim, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="curves are the mean over these seeds")
    ap.add_argument("--real", action="store_true", help="RecAgent's data (scenarios/recagent-1000.yaml, 200 agents)")
    ap.add_argument("--out", type=Path, default=Path("output/python-cocoon"))
    a = ap.parse_args()
    root = Path(__file__).resolve().parents[2]
    base = str(root / "scenarios" / "recagent-1000.yaml") if a.real else None
    common = dict(round=a.rounds, rec_random_k=0, checkpoint_every=0, write_messages=False,
                  **{"offline.satiation_weight": -2})
    if a.real:
        common["agent_num"] = 200
    probe = recagent.Simulation.from_config(base, output_dir=a.out / "probe", overwrite=True, round=1)
    ids = [it["item_id"] for it in probe.items()]
    n_agents = len(probe.agents()) if not a.real else 200
    del probe
    variants = {
        "built-in MF (Rust)": lambda seed: dict(rec_model="MF"),
        "numpy MF (Python)": lambda seed: dict(rec_model=NumpyMF(ids, seed=seed)),
        "numpy MF + 2 random items/page": lambda seed: dict(rec_model=NumpyMF(ids, seed=seed), rec_random_k=2),
    }
    curves = {label: [] for label in variants}
    for seed in a.seeds:
        for label, extra in variants.items():
            slug = label.split(" (")[0].replace(" ", "-").replace("+", "plus").replace("/", "-")
            sim, rows = run(f"{slug}-s{seed}", a.out, base, **dict(common, seed=seed, **extra(seed)))
            curves[label].append(rows)
            calls, secs = sim._recommender_stats()
            if calls:
                print(f"{'':>28}{calls} Python recommend calls, {1e3 * secs / calls:.3f} ms each end to end")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for ax, col, what in zip(axes, ["entropy_shown", "entropy_watched"], ["shown", "watched"]):
        for label, runs in curves.items():
            rounds = [r["round"] for r in runs[0]]
            mean = np.nanmean([[np.nan if r[col] is None else r[col] for r in rows] for rows in runs], axis=0)
            ax.plot(rounds, mean, marker="o", ms=3, label=label)
        ax.set_xlabel("round")
        ax.set_ylabel(f"genre entropy of the items {what} (bits)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    data = "RecAgent data" if a.real else "demo data"
    fig.suptitle(f"Information cocoon, {data}: {n_agents} habit-forming agents, mean of seeds "
                 f"{', '.join(map(str, a.seeds))}\npages from the model's list only (rec_random_k 0) unless marked",
                 fontsize=10)
    fig.tight_layout()
    a.out.mkdir(parents=True, exist_ok=True)
    png = a.out / "cocoon.png"
    fig.savefig(png)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
