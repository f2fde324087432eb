"""Bad input at the command line ends in one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine import cli
from tests.conftest import ROOT, SPECS


def _ponder(*args, env=None, module="engine.cli", timeout=60):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _clean_failure(done, *words):
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text, text
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("args", [
    ["show", "999"], ["stop", "999"], ["resume", "999"], ["export", "999", "--out", "exported"],
])
def test_an_unknown_run_id_is_said_in_every_subcommand(args, store):
    _clean_failure(_ponder("--store", str(store.path), *args), "no run with id 999", str(store.path))


@pytest.mark.parametrize("command", [["run"], ["check"], ["launch-command", "--gpus", "1", "--cpu"]])
def test_a_spec_path_that_is_a_folder_is_said_so(command, tmp_path, store):
    name, *rest = command
    _clean_failure(_ponder("--store", str(store.path), name, str(tmp_path), *rest), str(tmp_path), "is a folder")
    assert store.list_runs() == []


def test_a_garbage_store_is_named_and_left_alone(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"\x00garbage" * 100)
    for args in (["runs"], ["show", "1"], ["run", str(SPECS / "smoke.toml")]):
        _clean_failure(_ponder("--store", str(path), *args), str(path), "damaged")
    assert path.read_bytes() == b"\x00garbage" * 100


def test_a_ponder_home_that_is_a_file_is_said_so(tmp_path):
    home = tmp_path / "home"
    home.write_text("")
    _clean_failure(_ponder("runs", env={"PONDER_HOME": str(home)}), str(home), "is a file")


def test_a_run_folder_that_cannot_be_made_leaves_no_queued_run(tmp_path, store):
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    spec = tmp_path / "spec.toml"
    spec.write_text(f'output_dir = "{blocker}"\n' + (SPECS / "smoke.toml").read_text())
    _clean_failure(_ponder("--store", str(store.path), "run", str(spec)), "cannot create the run folder", str(blocker))
    assert store.list_runs() == []


def test_the_traceback_goes_to_the_log_not_the_terminal(monkeypatch, capsys, ponder_home):
    def broken(args):
        raise ZeroDivisionError("a bug")

    assert cli.run_command(broken, None) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err and "Traceback" not in err
    log = (ponder_home / "ponder-cli.log").read_text()
    assert "Traceback" in log and "ZeroDivisionError" in log


def test_store_option_before_a_subcommand_runs_the_command_line_not_the_app(store):
    done = _ponder("--store", str(store.path), "runs", module="desktop.entry", timeout=30)
    assert done.returncode == 0 and "no runs yet" in done.stdout, done.stdout + done.stderr


def test_which_arguments_open_the_app():
    from desktop.entry import wants_command_line

    assert wants_command_line(["--store", "x.db", "runs"]) and wants_command_line(["--store=x.db", "runs"])
    assert wants_command_line(["runs"]) and wants_command_line(["--version"])
    assert not wants_command_line([]) and not wants_command_line(["--store", "x.db"])
    assert not wants_command_line(["-style", "fusion"])  # Qt's own options still open the app


@pytest.mark.parametrize("options, field", [
    (["--samples", "0"], "--samples: must be at least 1"),
    (["--n", "0"], "--n: the number of prompts must be at least 1"),
    (["--batch-size", "0"], "--batch-size: must be at least 1"),
    (["--max-tokens", "0"], "--max-tokens: must be at least 1"),
    (["--temperature", "-0.5"], "--temperature: cannot be negative"),
    (["--samples", "4"], "--temperature: several samples per prompt need sampling"),  # greedy by default
])
def test_eval_options_are_checked_by_the_spec_rules_before_any_model_loads(options, field, store, monkeypatch,
                                                                         capsys):
    import engine.evaluate

    def must_not_run(*args, **kwargs):
        raise AssertionError("a model was loaded for options that cannot work")

    monkeypatch.setattr(engine.evaluate, "run_evaluation", must_not_run)
    for command in (["eval", "builtin:tiny-random"], ["compare", "builtin:tiny-random", "builtin:tiny-random"]):
        assert cli.main(["--store", str(store.path), *command, *options]) == cli.EXIT_USAGE
        assert field in capsys.readouterr().err
    assert store.list_evaluations() == []


@pytest.mark.parametrize("sources, task, said", [
    (["builtin:tiny-random"], "{tmp}/missing.jsonl", "missing.jsonl cannot be used: no such file"),
    (["builtin:tiny-random"], "{tmp}/bad.jsonl", "column 'question'"),
    (["builtin:tiny-random"], "builtin:nope", "unknown built-in task 'nope'"),
    (["run:77"], "builtin:arithmetic", "no run with id 77"),
    (["builtin:tiny-random", "run:77"], "builtin:arithmetic", "no run with id 77"),
])
def test_a_bad_task_or_source_is_refused_before_the_evaluation_is_registered(sources, task, said, store, tmp_path,
                                                                            capsys):
    (tmp_path / "bad.jsonl").write_text('{"q": 1}\n')
    command = ["eval", *sources] if len(sources) == 1 else ["compare", *sources]
    assert cli.main(["--store", str(store.path), *command, "--task", task.format(tmp=tmp_path), "--n", "3"]) \
        == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and "evaluation not started" in err and "Traceback" not in err
    assert store.list_evaluations() == []



def test_ponder_runs_shows_the_training_figures_and_the_held_out_accuracy_not_nan(store, capsys):
    """A pipeline ends with its eval stage, whose rows hold no reward: the list reads GRPO's last step and the
    held-out accuracy, and a figure a run does not have is a dash."""
    full = store.create_run("full", {"rewards": {"preset": "autothink"}}, "/full", status="succeeded")
    store.add_metrics(full, "grpo", 24, {"reward": -0.5, "accuracy": 0.25})
    store.add_metrics(full, "eval", 0, {"eval/accuracy": 0.575, "eval/tokens": 23.4})
    sft_only = store.create_run("sft-only", {}, "/sft", status="succeeded")
    store.add_metrics(sft_only, "sft", 40, {"loss": 0.3})
    assert cli.main(["--store", str(store.path), "runs"]) == 0
    lines = {line.split()[2]: line for line in capsys.readouterr().out.splitlines()}
    assert "reward -0.5  batch acc 0.25  held-out acc 0.575" in lines["full"]
    assert "reward -  batch acc -  held-out acc -" in lines["sft-only"]
    assert "nan" not in lines["full"] + lines["sft-only"]
