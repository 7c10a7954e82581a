"""The Python API on the embedded demo data (40 users, 200 films, offline user model)."""

import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

import recagent
from conftest import LowestUnseen

SMALL = dict(seed=7, round=3, agent_num=10)


def test_step_run_and_read_access(tmp_path):
    sim = recagent.Simulation.from_config(output_dir=tmp_path / "run", **SMALL)
    assert (sim.round, sim.rounds) == (0, 3)
    assert sim.time == "2023-06-01 08:00:00"
    assert sim.step() == 1
    # The clock is at the start of the round just run (its messages' time); interval 5h.
    assert sim.time == "2023-06-01 08:00:00"
    assert sim.messages(round=1)[0]["time"] == sim.time
    agents = sim.agents()
    assert [a["agent_id"] for a in agents] == list(range(10))
    assert {"name", "age", "gender", "traits", "interest", "watched", "heard"} <= set(agents[0])
    rows = sim.interactions()
    assert rows and {r["round"] for r in rows} == {1}
    assert set(rows[0]) == {"user_id", "item_id", "label", "rating", "round", "timestamp"}
    metrics = sim.metrics()
    assert [m["round"] for m in metrics] == [1]
    assert list(metrics[0]) == recagent.METRIC_COLUMNS
    assert sim.step() == 2
    assert datetime.fromisoformat(sim.time) == datetime(2023, 6, 1, 13, 0, 0)
    assert sim.run(progress=False) == 3
    assert [m["round"] for m in sim.metrics()] == [1, 2, 3]
    msgs = sim.messages(round=2)
    assert msgs and all(m["round"] == 2 for m in msgs)
    assert len(sim.messages()) > len(msgs)
    with pytest.raises(recagent.SimulationError, match="all 3 rounds"):
        sim.step()
    # The agent's watched history is the interactions it watched.
    user = next(r["user_id"] for r in sim.interactions() if r["label"] == 1)
    a = sim.agent(user)
    watched_csv = {r["item_id"] for r in sim.interactions() if r["user_id"] == user and r["label"] == 1}
    assert {w["item_id"] for w in a["watched"]} == watched_csv
    assert all(w["rating"] in (None, 1, 2, 3, 4, 5) for w in a["watched"])
    assert isinstance(a["memories"], list) and a["memories"]
    with pytest.raises(KeyError, match="no agent 999"):
        sim.agent(999)
    assert (tmp_path / "run" / "checkpoints" / "round-000003.ckpt").is_file()
    assert "finished" in (tmp_path / "run" / "manifest.json").read_text()


def test_config_dict_and_pandas(tmp_path):
    sim = recagent.Simulation({"seed": 3, "round": 1, "agent_num": 5, "page_size": 4}, output_dir=tmp_path)
    assert len(sim.agents()) == 5
    assert sim.config["page_size"] == 4
    pd = pytest.importorskip("pandas")
    sim.run(progress=False)
    df = pd.DataFrame(sim.interactions())
    assert set(df["user_id"]) <= set(range(5))


def test_config_errors_keep_the_key(tmp_path):
    with pytest.raises(recagent.ConfigError) as e:
        recagent.Simulation.from_config(output_dir=tmp_path, page_size=0)
    assert e.value.key == "page_size"
    assert "page_size" in str(e.value)
    with pytest.raises(recagent.ConfigError) as e:
        recagent.Simulation.from_config(output_dir=tmp_path, no_such_key=1)
    assert e.value.key == "no_such_key"
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nround: 2\nactive_prob: 7\n")
    with pytest.raises(recagent.ConfigError) as e:
        recagent.Simulation.from_config(bad, output_dir=tmp_path / "o")
    assert (e.value.key, e.value.line) == ("active_prob", 3)
    assert isinstance(e.value, recagent.RecagentError)


def test_an_earlier_run_is_refused_unless_overwritten(tmp_path):
    recagent.Simulation.from_config(output_dir=tmp_path, **SMALL).step()
    with pytest.raises(recagent.RunExistsError, match="overwrite=True") as e:
        recagent.Simulation.from_config(output_dir=tmp_path, **SMALL)
    assert any(f.endswith("manifest.json") for f in e.value.files)
    sim = recagent.Simulation.from_config(output_dir=tmp_path, overwrite=True, **SMALL)
    assert sim.round == 0 and sim.interactions() == []


def titles_by_id():
    import csv

    with open(Path(__file__).resolve().parents[2] / "data" / "item.csv", newline="") as f:
        return {int(r["id"]): r["title"] for r in csv.DictReader(f)}


def test_a_python_recommender_makes_the_pages(tmp_path, demo_item_ids):
    model = LowestUnseen(demo_item_ids)
    sim = recagent.Simulation.from_config(output_dir=tmp_path, rec_model=model, rec_random_k=0, page_size=4, **SMALL)
    assert model.fits == [0], "fitted once at the start, on no interactions"
    sim.run(progress=False)
    assert len(model.calls) > 10
    # Each call's exclude holds everything returned to that user before (the engine's exposures).
    returned = {}
    for user, k, exclude, history, page in model.calls:
        assert k == 4
        assert returned.get(user, set()) <= set(exclude)
        returned.setdefault(user, set()).update(page)
    # Every recommendation page in the messages is exactly what the model returned, in order.
    titles = titles_by_id()
    pages = [m for m in sim.messages() if m["action"] == "RECOMMENDER" and " is recommended [" in m["content"]]
    shown = [re.findall(r"<([^>]*)>", m["content"]) for m in pages]
    asked = [[titles[i] for i in c[4]] for c in model.calls if c[4]]
    assert sorted(map(tuple, shown)) == sorted(map(tuple, asked))
    # And interaction.csv holds them as shown: the lowest ids first.
    first = [r["item_id"] for r in sim.interactions() if r["round"] == 1 and r["user_id"] == pages[0]["agent_id"]]
    assert first[:4] == sorted(demo_item_ids)[:4]
    # Re-fitted after every round (retrain_every 1) on the watches so far.
    watches = sum(r["label"] for r in sim.interactions())
    assert len(model.fits) == 4 and model.fits[-1] == watches
    calls, secs = sim._recommender_stats()
    assert calls == len(model.calls) and secs > 0


class Failing(LowestUnseen):
    def __init__(self, ids, fail_at):
        super().__init__(ids)
        self.fail_at = fail_at

    def recommend(self, user, k, exclude, history):
        if len(self.calls) == self.fail_at:
            self.fail_at = None
            raise ValueError("boom")
        return super().recommend(user, k, exclude, history)


def test_a_failing_recommender_is_a_clear_error_and_the_round_is_rolled_back(tmp_path, demo_item_ids):
    clean = recagent.Simulation.from_config(output_dir=tmp_path / "a", rec_model=LowestUnseen(demo_item_ids), **SMALL)
    clean.run(progress=False)
    model = Failing(demo_item_ids, fail_at=None)
    sim = recagent.Simulation.from_config(output_dir=tmp_path / "b", rec_model=model, **SMALL)
    sim.step()
    model.fail_at = len(model.calls) + 1  # the second page of round 2
    before = (tmp_path / "b" / "interaction.csv").read_bytes()
    with pytest.raises(recagent.RecommenderError) as e:
        sim.step()
    assert re.match(r"rec_model\.recommend\(user=\d+, k=5\) raised ValueError: boom$", str(e.value)), str(e.value)
    assert isinstance(e.value.__cause__, ValueError)
    assert e.value.method == "recommend" and e.value.k == 5
    assert sim.round == 1
    assert (tmp_path / "b" / "interaction.csv").read_bytes() == before
    assert [m["round"] for m in sim.metrics()] == [1]
    # Usable again: the rest of the run is the clean run's, byte for byte.
    sim.run(progress=False)
    for f in ("interaction.csv", "messages.jsonl", "metrics.csv"):
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "a" / f).read_bytes(), f


def test_bad_answers_are_errors(tmp_path):
    class NotIds:
        def recommend(self, user, k, exclude, history):
            return [10_000]

    sim = recagent.Simulation.from_config(output_dir=tmp_path, rec_model=NotIds(), **SMALL)
    with pytest.raises(recagent.RecommenderError, match="returned item 10000, which is not in the catalogue"):
        sim.step()
    with pytest.raises(TypeError, match="recommend"):
        recagent.Simulation.from_config(output_dir=tmp_path / "x", rec_model=object())


def test_python_and_cli_give_the_same_bytes(tmp_path, recagent_bin):
    cwd = tmp_path / "cli"
    cwd.mkdir()  # no config/config.yaml here: the CLI runs the embedded default, as Python does
    subprocess.run(
        [str(recagent_bin), "run", "--seed", "11", "--rounds", "2", "--agents", "12", "--set", "page_size=4",
         "--output-dir", "out", "--quiet"],
        cwd=cwd, check=True,
    )
    sim = recagent.Simulation.from_config(seed=11, round=2, agent_num=12, page_size=4, output_dir=tmp_path / "py")
    sim.run(progress=False)
    for f in ("interaction.csv", "messages.jsonl", "metrics.csv"):
        a = (cwd / "out" / f).read_bytes()
        assert a, f
        assert (tmp_path / "py" / f).read_bytes() == a, f


def test_checkpoint_resume_and_branch(tmp_path, demo_item_ids):
    full = recagent.Simulation.from_config(output_dir=tmp_path / "full", **SMALL)
    full.run(progress=False)
    part = recagent.Simulation.from_config(output_dir=tmp_path / "part", **SMALL)
    part.step()
    ck = part.checkpoint(tmp_path / "mine.ckpt")
    part.step()
    del part
    resumed = recagent.Simulation.resume(tmp_path / "part" / "checkpoints" / "round-000001.ckpt")
    assert resumed.round == 1
    resumed.run(progress=False)
    for f in ("interaction.csv", "messages.jsonl", "metrics.csv"):
        assert (tmp_path / "part" / f).read_bytes() == (tmp_path / "full" / f).read_bytes(), f
    with pytest.raises(recagent.CheckpointError):
        (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
        recagent.Simulation.resume(tmp_path / "broken.ckpt")
    assert Path(ck).is_file()
    # A branch from round 1 with another recommender; the parent goes on unchanged.
    parent = recagent.Simulation.from_config(output_dir=tmp_path / "parent", **SMALL)
    parent.step()
    branch = parent.branch(tmp_path / "branch", rec_model="Random", round=2)
    assert (branch.round, branch.rounds) == (1, 2)
    branch.run(progress=False)
    assert [m["round"] for m in branch.metrics()] == [1, 2]
    assert [r for r in branch.interactions() if r["round"] == 1] == parent.interactions()
    parent.run(progress=False)
    for f in ("interaction.csv", "metrics.csv"):
        assert (tmp_path / "parent" / f).read_bytes() == (tmp_path / "full" / f).read_bytes(), f


def test_a_python_model_must_be_passed_again_on_resume(tmp_path, demo_item_ids):
    model = LowestUnseen(demo_item_ids)
    sim = recagent.Simulation.from_config(output_dir=tmp_path, rec_model=model, **SMALL)
    sim.step()
    ck = tmp_path / "checkpoints" / "round-000001.ckpt"
    del sim
    with pytest.raises(recagent.ConfigError, match="rec_model=model") as e:
        recagent.Simulation.resume(ck)
    assert e.value.key == "rec_model"
    again = LowestUnseen(demo_item_ids)
    sim = recagent.Simulation.resume(ck, rec_model=again)
    assert again.fits, "re-fitted on the restored interactions"
    sim.run(progress=False)
    assert sim.round == 3 and again.calls


def test_a_config_dict_naming_data_files_reads_them_from_the_working_directory(tmp_path, monkeypatch, demo_item_ids):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    model = LowestUnseen(demo_item_ids)
    cfg = {"item_path": "data/item.csv", "user_path": "data/users.csv", "relationship_path": "data/relationship.csv",
           "round": 1, "agent_num": 4, "rec_model": model}
    sim = recagent.Simulation(cfg, output_dir=tmp_path, seed=5)
    assert sim.config["seed"] == 5 and sim.config["round"] == 1
    assert [a["agent_id"] for a in sim.agents()] == [0, 1, 2, 3]
    sim.run(progress=False)
    assert model.fits and sim.round == 1
    with pytest.raises(recagent.DataError, match="nope.csv"):
        recagent.Simulation(dict(cfg, item_path="data/nope.csv", rec_model="MF"), output_dir=tmp_path / "x")
