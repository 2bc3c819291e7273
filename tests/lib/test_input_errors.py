"""Bad input fails fast, where it is given, with a message that quotes the value and says the fix.

One test per case found by trying the course with bad input on purpose; each of them passed silently
(or failed late, or unhelpfully) before these checks existed. The resource and checkpoint corruption
cases live in tests/repo/test_resources.py and tests/lib/test_checkpoint.py.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import capstone
from course_lib.capstone import CapstoneConfig, runner
from course_lib.data import TokenChunkDataset, batch_stream
from course_lib.models import TransformerConfig, TransformerForCausalLM
from classroom.build import SETUP_CODE
from course_lib.optim import AdamW, Lion, Muon, MuonWithAdamW, build_optimizer
from course_lib.runtime import validate_device
from course_lib.schedules import linear_warmup_decay, warmup_cosine
from course_lib.train import train

CFG = dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
           num_key_value_heads=1, max_position_embeddings=16)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return TransformerForCausalLM(TransformerConfig(**CFG))


def tiny_data():
    return TokenChunkDataset(torch.arange(800) % 50, seq_len=16, vocab_size=50)


# ------------------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name,kwargs,guess", [
    ("MuonWithAdamW", dict(nestrov=False), "nesterov"),
    ("MuonWithAdamW", dict(adamw_betas=(0.9, 0.99)), None),
    ("Muon", dict(momentun=0.9), "momentum"),
    ("AdamW", dict(weight_decays=0.1), "weight_decay"),
    ("torch.optim.AdamW", dict(momentum=0.9), None),
])
def test_build_optimizer_rejects_unknown_keywords(name, kwargs, guess):
    with pytest.raises(TypeError) as err:
        build_optimizer(name, tiny_model(), **kwargs)
    message = str(err.value)
    assert repr(next(iter(kwargs))) in message and "accepted:" in message
    assert "weight_decay" in message  # the accepted ones are listed
    if guess:
        assert f"did you mean {guess!r}" in message


def test_hybrid_param_group_rejects_unknown_keys():
    params = [nn.Parameter(torch.randn(4, 4))]
    with pytest.raises(TypeError, match="'nestrov'.*nesterov"):
        MuonWithAdamW([dict(params=params, use_muon=True, nestrov=False)])
    with pytest.raises(TypeError, match="'momentum'"):  # a Muon key in the AdamW group
        MuonWithAdamW([dict(params=params, use_muon=False, momentum=0.9)])
    opt = build_optimizer("MuonWithAdamW", tiny_model(), nesterov=False, ns_steps=3)  # correct spellings still work
    assert opt.param_groups[0]["nesterov"] is False and opt.param_groups[0]["ns_steps"] == 3


@pytest.mark.parametrize("make,kind,quoted", [
    (lambda ps: AdamW(ps, weight_decay=math.inf), ValueError, "inf"),
    (lambda ps: AdamW(ps, eps=math.inf), ValueError, "inf"),
    (lambda ps: AdamW(ps, betas=(0.9, math.nan)), ValueError, "nan"),
    (lambda ps: Muon(ps, weight_decay=math.inf), ValueError, "inf"),
    (lambda ps: Muon(ps, eps=math.inf), ValueError, "inf"),
    (lambda ps: Lion(ps, weight_decay=math.inf), ValueError, "inf"),
    (lambda ps: MuonWithAdamW([dict(params=ps, use_muon=False, eps=math.inf)]), ValueError, "inf"),
    (lambda ps: AdamW(ps, lr="0.001"), TypeError, "'0.001' of type str"),
    (lambda ps: Muon(ps, momentum="0.95"), TypeError, "'0.95' of type str"),
    (lambda ps: Muon(ps, nesterov="False"), TypeError, "'False' of type str"),
    (lambda ps: AdamW(ps, foreach=1), TypeError, "1 of type int"),
], ids=["adamw_wd_inf", "adamw_eps_inf", "adamw_beta2_nan", "muon_wd_inf", "muon_eps_inf", "lion_wd_inf",
        "hybrid_eps_inf", "adamw_lr_str", "muon_momentum_str", "muon_nesterov_str", "adamw_foreach_int"])
def test_non_finite_or_mistyped_hyperparameters_raise_quoting_the_value(make, kind, quoted):
    with pytest.raises(kind) as err:
        make([nn.Parameter(torch.randn(4, 4))])
    assert quoted in str(err.value)


def test_string_lr_message_says_it_was_a_string():
    with pytest.raises(TypeError) as err:
        AdamW([nn.Parameter(torch.randn(2))], lr="0.001")
    assert str(err.value) == ("lr must be a number, got '0.001' of type str; write it without quotes "
                              "(e.g. lr=0.001)")


@pytest.mark.parametrize("shape", [(), (0, 4), (3, 0), (0,)])
def test_muon_rejects_parameters_it_cannot_orthogonalize(shape):
    with pytest.raises(ValueError, match=r"Muon cannot update a parameter of shape \(.*\).*AdamW") as err:
        Muon([nn.Parameter(torch.zeros(shape))])
    assert str(tuple(shape)) in str(err.value)
    with pytest.raises(ValueError, match="Muon cannot update"):
        MuonWithAdamW([dict(params=[nn.Parameter(torch.zeros(shape))], use_muon=True)])


def test_muon_rejects_sparse_gradients_with_a_clear_message():
    emb = nn.Embedding(10, 4, sparse=True)
    opt = Muon(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match=r"sparse gradient.*\(10, 4\).*sparse=False"):
        opt.step()


# ---------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("bad", [-1, -5, -99, 50, 77])
@pytest.mark.parametrize("return_logits", [True, False])
def test_labels_outside_the_vocabulary_raise_on_both_loss_paths(bad, return_logits):
    model = tiny_model()
    x = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[1, 5] = bad
    with pytest.raises(ValueError) as err:
        model(x, labels=y, return_logits=return_logits)
    assert f"label {bad} at position (1, 5)" in str(err.value) and "[0, 50)" in str(err.value)


def test_label_minus_100_is_ignored_the_same_way_on_both_paths():
    model = tiny_model()
    x = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, 3] = y[1, 7] = -100
    chunked = model(x, labels=y, return_logits=False).loss
    full = model(x, labels=y).loss
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-6)  # fp32: the two sum in another order
    assert chunked.item() != pytest.approx(model(x, labels=x).loss.item(), abs=1e-4)  # the two are left out


@pytest.mark.parametrize("field,value,quoted", [
    ("rms_norm_eps", -1.0, "-1.0"), ("rms_norm_eps", 0.0, "0.0"), ("rms_norm_eps", math.nan, "nan"),
    ("rope_theta", 0.0, "0.0"), ("rope_theta", -10.0, "-10.0"), ("rope_theta", math.inf, "inf"),
    ("initializer_range", math.inf, "inf"), ("hidden_size", "128", "'128' of type str"),
    ("attention_dropout", math.nan, "nan"),
])
def test_model_config_rejects_values_that_cannot_be_right(field, value, quoted):
    with pytest.raises((TypeError, ValueError)) as err:
        TransformerConfig(**{**CFG, field: value})
    assert field in str(err.value) and quoted in str(err.value)


# -------------------------------------------------------------------------------- training loop


class PoisonAtStep(torch.optim.SGD):
    """SGD that writes a NaN into the first parameter during step ``at`` (like an overflowing update)."""

    def __init__(self, params, at):
        super().__init__(params, lr=1e-3)
        self.at, self.count = at, 0

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        self.count += 1
        if self.count == self.at:
            self.param_groups[0]["params"][0].view(-1)[0] = float("nan")


@pytest.mark.parametrize("eval_every", [0, 2])
def test_nan_from_the_last_optimizer_step_stops_training_naming_the_step(eval_every):
    model, ds = tiny_model(), tiny_data()
    with pytest.raises(FloatingPointError, match=r"run: after the update of step 4 the weights hold inf or NaN "
                                                 r"\(model\.embed_tokens\.weight\)"):
        train(model, PoisonAtStep(model.parameters(), at=4), batch_stream(ds, 4, seed=0), steps=4,
              val_dataset=ds, eval_every=eval_every, progress=False)


def test_nan_before_the_last_step_is_caught_by_the_next_loss():
    model, ds = tiny_model(), tiny_data()
    with pytest.raises(FloatingPointError, match="the loss is nan at step 3"):
        train(model, PoisonAtStep(model.parameters(), at=2), batch_stream(ds, 4, seed=0), steps=4, progress=False)


def test_non_finite_gradient_stops_before_the_update():
    model, ds = tiny_model(), tiny_data()
    model.lm_head.weight.register_hook(lambda g: g * math.inf)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="the gradient norm is (inf|nan) at step 1"):
        train(model, AdamW(model.parameters()), batch_stream(ds, 4, seed=0), steps=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing was updated


@pytest.mark.parametrize("kwargs,quoted", [(dict(steps=0), "0"), (dict(steps="5"), "'5'"),
                                           (dict(steps=4, clip_norm=math.nan), "nan"),
                                           (dict(steps=4, eval_every=-1), "-1")])
def test_train_rejects_bad_arguments(kwargs, quoted):
    model, ds = tiny_model(), tiny_data()
    with pytest.raises((TypeError, ValueError)) as err:
        train(model, AdamW(model.parameters()), batch_stream(ds, 4, seed=0), progress=False, **kwargs)
    assert quoted in str(err.value)


# ------------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("n", [1, 5])
def test_warmup_filling_the_whole_run_ends_at_min_ratio(n):
    from transformers import get_linear_schedule_with_warmup

    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=n, num_training_steps=n)
    reference = []
    for _ in range(n + 3):
        reference.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [linear_warmup_decay(s, n, n) for s in range(n + 3)] == pytest.approx(reference, abs=1e-12)
    assert linear_warmup_decay(n, n, n, min_ratio=0.2) == pytest.approx(0.2)
    assert warmup_cosine(n, n, n, min_ratio=0.1) == pytest.approx(0.1)  # as its docstring promises
    assert warmup_cosine(n + 7, n, n, min_ratio=0.1) == pytest.approx(0.1)


# ----------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("args,quoted", [
    (["--steps", "0"], "--steps: must be ≥ 1, got '0'"),
    (["--steps", "-5"], "--steps: must be ≥ 1, got '-5'"),
    (["--steps", "ten"], "--steps: expected a whole number ≥ 1, got 'ten'"),
    (["--batch-size", "-1"], "--batch-size: must be ≥ 1, got '-1'"),
    (["--micro-batch", "0"], "--micro-batch: must be ≥ 1, got '0'"),
    (["--optimizers", "muon", "--checkpoint-every", "-1"], "--checkpoint-every: must be ≥ 0, got '-1'"),
    (["--optimizers", "muon", "--crash-after-step", "-3"], "--crash-after-step: must be ≥ 1, got '-3'"),
    (["--device", "foo"], "--device 'foo' is not a device name; this machine has"),
    (["--resume", "no/such/checkpoint.pt"], "--resume no/such/checkpoint.pt: no such checkpoint file"),
    (["--tokens", "no/such/folder"], "--tokens no/such/folder: no such folder"),
])
def test_command_line_errors_are_usage_errors_quoting_the_value(args, quoted, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "run_one", _must_not_train)
    with pytest.raises(SystemExit) as exit_info:
        capstone.main([*args, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert quoted in err and "usage:" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_one_line_saying_what_to_pass(capsys, tmp_path):
    with pytest.raises(SystemExit):
        capstone.main(["--device", "cuda", "--out", str(tmp_path)])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--device 'cuda' was asked for" in last and "this machine has cpu" in last and "pass cpu" in last
    with pytest.raises(ValueError, match="COURSE_DEVICE 'cuda:3'"):
        validate_device("cuda:3", source="the environment variable COURSE_DEVICE")


def _must_not_train(*args, **kwargs):
    raise AssertionError("training started although an argument was invalid")


def test_out_pointing_at_a_file_fails_before_the_first_step(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_one", _must_not_train)
    target = tmp_path / "results.json"
    target.write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        capstone.main(["--quick", "--no-progress", "--out", str(target)])
    assert exit_info.value.code == 2
    assert f"the output folder {target} is an existing file" in capsys.readouterr().err


def test_capstone_config_quotes_the_bad_value():
    for kwargs, quoted in ((dict(steps=-5), "steps must be ≥ 1, got -5"),
                           (dict(batch_size=0), "batch_size must be ≥ 1, got 0"),
                           (dict(muon_lr=math.nan), "muon_lr must be a finite number, got nan"),
                           (dict(lr_centres={"one_pass_constant": {}}), "no starting learning rate"),
                           (dict(conditions=("three_passes",)), "non-empty selection of"),
                           (dict(conditions=()), "got ()"),
                           (dict(search_max_points=2), "search_max_points must be ≥ 3, got 2")):
        with pytest.raises(ValueError) as err:
            CapstoneConfig(**kwargs)
        assert quoted in str(err.value)


# ------------------------------------------------------- finished runs survive an interrupted capstone

TINY = dict(steps=3, eval_every=3, seq_len=32, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_eval_sequences=8, window=2)


def test_interrupted_capstone_keeps_finished_runs_and_a_rerun_continues(tmp_path, monkeypatch):
    config = CapstoneConfig.quick(**TINY)
    path = tmp_path / "capstone_compact.json"
    real_run_one = runner.run_one
    trained = []

    def interrupt_fourth(*args, **kwargs):
        if len(trained) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the fourth run (the second of the first LR search)
        trained.append(kwargs.get("name"))
        return real_run_one(*args, **kwargs)

    monkeypatch.setattr(runner, "run_one", interrupt_fourth)
    with pytest.raises(KeyboardInterrupt):
        capstone.run_capstone(config, progress=False, results_path=path, log=lambda *a: None)
    saved = json.loads(path.read_text())
    assert saved["complete"] is False and saved["finished_runs"] == 3
    assert set(saved["replica"]) == {"torch_adamw", "muon_all"}
    assert list(saved["cells"]["one_pass_constant"]["torch_adamw"]["lr_search"]) == ["0.002"]
    assert all(len(run["train_loss"]) == 3 for run in saved["replica"].values())

    rerun = []
    monkeypatch.setattr(runner, "run_one", lambda *a, **k: rerun.append(k.get("name")) or real_run_one(*a, **k))
    results = capstone.run_capstone(config, progress=False, results_path=path, log=lambda *a: None)
    assert rerun[0] == "one_pass_constant AdamW lr=0.004"  # only the missing runs, from where it stopped
    assert not any(name.startswith("replica") for name in rerun) and len(set(rerun)) == len(rerun)
    assert results["replica"] == saved["replica"]  # the finished runs were taken from the file, not retrained
    final = json.loads(path.read_text())
    assert final["complete"] is True and final["finished_runs"] == 3 + len(rerun)


def test_results_of_other_settings_are_not_continued(tmp_path):
    path = tmp_path / "capstone_compact.json"
    path.write_text(json.dumps({"config": {**json.loads(json.dumps(CapstoneConfig(**TINY).__dict__)),
                                           "steps": 7}, "replica": {}}))
    with pytest.raises(ValueError, match=r"other settings \(steps: 7 in the file, now 3\).*--restart"):
        capstone.run_capstone(CapstoneConfig(**TINY), progress=False, study=False, results_path=path,
                              log=lambda *a: None)


def test_interrupted_command_says_where_the_finished_runs_are(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_one", interrupt)
    assert capstone.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 130
    assert f"every finished run is saved in {tmp_path}; run the same command again" in capsys.readouterr().err


# --------------------------------------------------------------------------------- the notebooks


def test_setup_cell_says_what_to_run_when_course_lib_is_missing():
    """Run every notebook's first code cell in a Python where `import course_lib` fails."""
    hide = ("import sys\n"
            "class Hide:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'course_lib':\n"
            "            raise ModuleNotFoundError(\"No module named 'course_lib'\", name='course_lib')\n"
            "sys.meta_path.insert(0, Hide())\n")
    proc = subprocess.run([sys.executable, "-c", hide + SETUP_CODE], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: course_lib is not installed in this kernel's Python")
    assert "make lab" in last and "pip install -e ." in last and "코스 폴더에서" in last
    ok = subprocess.run([sys.executable, "-c", SETUP_CODE], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr  # with the course installed it does nothing


def test_notebooks_leave_nothing_in_the_temp_folder():
    """Notebooks write scratch files into a TemporaryDirectory they remove themselves (never mkdtemp)."""
    sources = sorted((Path(__file__).resolve().parents[2] / "notebooks" / "src").glob("*.txt"))
    for src in sources:
        text = src.read_text(encoding="utf-8")
        assert "mkdtemp(" not in text and "NamedTemporaryFile(delete=False" not in text, src.name
        for handle in ("ckpt_dir", "WORK_DIR"):
            if f"{handle} = tempfile.TemporaryDirectory(" in text:
                assert f"{handle}.cleanup()" in text, f"{src.name} never removes {handle}"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_resume_from_a_damaged_file_is_one_usage_error(content, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "run_one", _must_not_train)
    bad = tmp_path / "muon.pt"
    bad.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        capstone.main(["--resume", str(bad), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {bad} is" in err and "without --resume" in err
    assert "Traceback" not in err and "weights_only" not in err
