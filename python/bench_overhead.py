"""The overhead of a Python recommender call per page: what the engine spends around each
`recommend` call (attaching to the interpreter, building `exclude` and `history`, the call,
reading the answer) minus the time inside the Python method itself.

    python python/bench_overhead.py [--rounds 5] [--agents 40] [--config FILE]

The model does next to nothing (the lowest ids not shown yet, from a precomputed list), so the
figure is the adapter's cost, not a model's.
"""

import argparse
import tempfile
import time

import recagent


class Cheap:
    def __init__(self, ids):
        self.ids = sorted(ids)
        self.inside = 0.0

    def recommend(self, user, k, exclude, history):
        t = time.perf_counter()
        seen = set(exclude)
        out = []
        for i in self.ids:
            if i not in seen:
                out.append(i)
                if len(out) == k:
                    break
        self.inside += time.perf_counter() - t
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--agents", type=int, default=40)
    ap.add_argument("--config", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        probe = recagent.Simulation.from_config(a.config, output_dir=f"{d}/p", round=1)
        model = Cheap([it["item_id"] for it in probe.items()])
        del probe
        sim = recagent.Simulation.from_config(a.config, output_dir=f"{d}/r", rec_model=model, round=a.rounds,
                                              agent_num=a.agents, checkpoint_every=0)
        t = time.perf_counter()
        sim.run(progress=False)
        wall = time.perf_counter() - t
        calls, secs = sim._recommender_stats()
        items = len(model.ids)
        print(f"{calls} recommend calls ({items} items) in a {wall:.2f} s run: {1e6 * secs / calls:.1f} us per call "
              f"end to end, {1e6 * model.inside / calls:.1f} us inside the model, "
              f"overhead {1e6 * (secs - model.inside) / calls:.1f} us per call")


if __name__ == "__main__":
    main()
