"""A Python recommender with ``recommend_batch``: a round's first pages come in one call, and each
browsing step's next pages in another; the run is byte for byte the one its per-page
``recommend`` gives."""

import pytest

import recagent
from conftest import LowestUnseen

SMALL = dict(seed=7, round=2, agent_num=10, active_prob=1)


class Batched(LowestUnseen):
    """``LowestUnseen`` that also answers a batch of users at once, recording each batch."""

    def __init__(self, item_ids):
        super().__init__(item_ids)
        self.batches = []

    def recommend_batch(self, users, k, excludes, histories):
        assert len(users) == len(excludes) == len(histories)
        self.batches.append(list(users))
        return [self.recommend(u, k, e, h) for u, e, h in zip(users, excludes, histories)]


# Pages of two items: with 20 agents some agents ask for a next page in the same step.
PAGES = dict(seed=7, round=2, agent_num=20, active_prob=1, page_size=2)


def run(tmp_path, name, model):
    sim = recagent.Simulation.from_config(output_dir=tmp_path / name, rec_model=model, **PAGES)
    sim.run(progress=False)
    out = tmp_path / name
    return [(out / f).read_bytes() for f in ("interaction.csv", "messages.jsonl", "metrics.csv")]


def test_pages_come_in_one_call_per_step_with_the_same_outputs(tmp_path, demo_item_ids):
    batched = Batched(demo_item_ids)
    one_by_one = LowestUnseen(demo_item_ids)
    a = run(tmp_path, "batched", batched)
    b = run(tmp_path, "single", one_by_one)
    assert a == b
    # Each batch is of distinct agents in id order: a round's first pages, then each browsing
    # step's next pages of two or more agents (one agent's page is one recommend call).
    assert all(u == sorted(u) and len(set(u)) == len(u) > 1 for u in batched.batches), batched.batches
    # A round's first pages, then next pages of agents among them: one round start per round,
    # and at least one batch of next pages.
    starts, nexts, first = 0, 0, set()
    for u in batched.batches:
        if set(u) <= first:
            nexts += 1
        else:
            starts, first = starts + 1, set(u)
    assert (starts, nexts > 0) == (PAGES["round"], True), batched.batches
    # Each page is one recommend call either way (batched ones go through recommend here too),
    # and no page was asked twice.
    assert len(batched.calls) == len(one_by_one.calls)
    assert sum(len(u) for u in batched.batches) <= len(one_by_one.calls)


class WrongCount(LowestUnseen):
    def recommend_batch(self, users, k, excludes, histories):
        return [[]]


def test_a_batch_of_the_wrong_length_is_a_clear_error(tmp_path, demo_item_ids):
    sim = recagent.Simulation.from_config(
        output_dir=tmp_path / "w", rec_model=WrongCount(demo_item_ids), **SMALL
    )
    with pytest.raises(recagent.RecommenderError, match=r"recommend_batch\(users=<\d+ users>, k=5\) returned 1 pages"):
        sim.step()
    assert sim.round == 0
