"""Interventions from Python (``recagent.intervention`` in the engine): interview, message,
profile edit and live settings between rounds, refusals, and their log."""

import pytest

import recagent

SMALL = dict(seed=7, round=3, agent_num=10, active_prob=1)


def test_interview_and_message_reach_the_next_rounds_messages(tmp_path):
    sim = recagent.Simulation.from_config(output_dir=tmp_path / "run", **SMALL)
    sim.step()
    # A movie the agent watched in round 1, asked about by title: the offline answer states
    # the agent's own rating of it.
    watch = next(r for r in sim.interactions() if r["label"] == 1)
    user, item, rating = watch["user_id"], watch["item_id"], watch["rating"]
    title = next(i["title"] for i in sim.items() if i["item_id"] == item)
    answer = sim.interview(user, f"Did you like <{title}>?")
    assert answer.startswith(f"I watched <{title}> and gave it {rating} out of 5:"), answer
    other = (user + 1) % 10
    sim.send_message(other, "The festival starts tomorrow.")
    log = sim.interventions()
    assert [e["intervention"]["kind"] for e in log] == ["interview", "message"]
    assert [(e["before_round"], e["seq"]) for e in log] == [(2, 0), (2, 1)]
    assert log[0]["answer"] == answer
    sim.step()
    two = sim.messages(round=2)
    name = sim.agent(other)["name"]
    assert any(
        m["agent_id"] == other
        and m["action"] == "MESSAGE"
        and m["content"] == f"{name} receives a message: The festival starts tomorrow."
        for m in two
    )
    assert any(m["agent_id"] == user and m["action"] == "INTERVIEW" for m in two)
    assert not any(m["action"] in ("MESSAGE", "INTERVIEW") for m in sim.messages(round=1))
    assert (tmp_path / "run" / "interventions.jsonl").read_text().count("\n") == 2


def test_profile_and_settings_change_and_refusals_change_nothing(tmp_path):
    sim = recagent.Simulation.from_config(output_dir=tmp_path / "run", **SMALL)
    sim.edit_profile(2, age=33, interest="Comedy")
    prof = sim.agent(2)
    assert (prof["age"], prof["interest"]) == (33, "Comedy")
    with pytest.raises(recagent.InterventionError, match="age: 0 is out of range"):
        sim.edit_profile(2, age=0, interest="Horror")
    assert sim.agent(2)["interest"] == "Comedy"
    with pytest.raises(recagent.InterventionError, match="name cannot change"):
        sim.edit_profile(2, name="Bob")
    with pytest.raises(recagent.InterventionError, match="unknown field `mood`"):
        sim.edit_profile(2, mood="happy")
    with pytest.raises(recagent.InterventionError, match="no agent has id 99"):
        sim.send_message(99, "hello")
    with pytest.raises(recagent.InterventionError, match="`agent_num` cannot change mid-run"):
        sim.set(agent_num=3)
    with pytest.raises(recagent.ConfigError) as e:
        sim.set(page_size=0)
    assert e.value.key == "page_size"
    # All or nothing: the valid first key is not applied when a later one is refused.
    with pytest.raises(recagent.ConfigError):
        sim.set(active_prob=0.3, page_size=0)
    with pytest.raises(recagent.InterventionError, match="cannot change mid-run"):
        sim.set(page_size=2, agent_num=3)
    with pytest.raises(recagent.InterventionError, match="built, resumed or branched"):
        sim.set(rec_model=object())
    assert len(sim.interventions()) == 1
    sim.set(page_size=3, rec_random_k=0, rec_model="Popularity")
    assert sim.config["page_size"] == 3 and sim.config["rec_model"] == "Popularity"
    kinds = [(e["intervention"]["kind"], e["intervention"].get("key")) for e in sim.interventions()]
    assert kinds == [
        ("profile", None),
        ("setting", "page_size"),
        ("setting", "rec_random_k"),
        ("setting", "rec_model"),
    ]
    sim.step()
    shown = {}
    for r in sim.interactions():
        shown[r["user_id"]] = shown.get(r["user_id"], 0) + 1
    # Full pages of 3 (200 demo films): every user's shown items are whole pages.
    assert shown and all(n % 3 == 0 for n in shown.values()), shown
