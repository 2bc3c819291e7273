"""The capstone command runs end to end and writes its figure and its curves."""

import json

import torch

from course_lib import capstone
from course_lib.capstone import CapstoneConfig, build_model, prepare_data, run_one


def test_every_optimizer_starts_from_the_same_weights_and_batches():
    config = CapstoneConfig.quick(steps=2)
    data = prepare_data(config)
    a = build_model(config, data.vocab_size)
    b = build_model(config, data.vocab_size)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    first = [run_one(config, data.train, opt, progress=False).train_loss[0] for opt in ("torch_adamw", "muon")]
    assert first[0] == first[1]  # same weights, same first batch -> same first loss


def test_command_writes_png_and_json(tmp_path):
    assert capstone.main(["--quick", "--steps", "3", "--no-progress", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "capstone_compact.json").read_text())
    assert (tmp_path / "capstone_compact.png").stat().st_size > 10_000
    assert set(results["replica"]) == {"torch_adamw", "muon_all"}
    assert set(results["heldout"]) == {"torch_adamw", "muon_all", "muon"}
    for run in results["heldout"].values():
        assert len(run["train_loss"]) == 3 and run["val_steps"][-1] == 3
    assert set(results["best"]) == {"adamw", "muon"}
    assert results["config"]["batch_size"] == 16 and results["config"]["seq_len"] == 128
    table = (tmp_path / "capstone_compact.md").read_text()
    assert table.strip() == capstone.results_table(results)
    assert len(table.strip().splitlines()) == 2 + 2 + 3 + 2  # header, replica, held-out, best of each sweep


def test_sweep_edge_flags_an_unbracketed_optimum():
    from course_lib.capstone import sweep_edge

    runs = {"0.001": None, "0.002": None, "0.004": None}
    assert sweep_edge(runs, "0.001") and sweep_edge(runs, 0.004)
    assert not sweep_edge(runs, "0.002")
    assert not sweep_edge({"0.002": None}, "0.002")  # one point: nothing to bracket
    defaults = CapstoneConfig()
    assert defaults.adamw_lr in defaults.adamw_sweep and defaults.muon_lr in defaults.muon_sweep
    assert min(defaults.adamw_sweep) < defaults.adamw_lr < max(defaults.adamw_sweep)
    assert min(defaults.muon_sweep) < defaults.muon_lr < max(defaults.muon_sweep)
