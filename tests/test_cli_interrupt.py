"""SIGINT and SIGTERM sent mid-epoch to a real `learnloop fit`: it stops after the batch, saves OUT/last.ckpt,
prints one line with the command that resumes, exits 130 / 143; that command ends bit for bit where an
uninterrupted run ends. Output to a pipe is plain: no carriage returns, no colour codes, progress lines every
--log-every seconds; errors are coloured on a terminal only, and never with NO_COLOR."""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# 719 batches of 2 per epoch, about a second each on one thread: the signal, sent when the first progress line
# (after 0.2 s) is read, lands well inside the epoch
FIT = ("fit", "digits", "--epochs", "2", "--bs", "2", "--lr", "0.02", "--no-tensorboard", "--log-every", "0.2")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: bit-reproducible across processes


def _command(learnloop_cmd: list[str], *args: object) -> list[str]:
    return [*learnloop_cmd, *map(str, args)]


@pytest.fixture(scope="module")
def straight(learnloop_cmd, tmp_path_factory) -> Path:
    """OUT of the same fit, never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    result = subprocess.run(_command(learnloop_cmd, *FIT, "--out", out), capture_output=True, text=True,
                            timeout=300, env=ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def _rows(out: Path) -> list[dict]:
    with open(out / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def _assert_plain(output: str, n_rows: int) -> None:
    """Output to a pipe: no carriage returns or colour codes; progress lines and epoch rows, plain."""
    assert "\r" not in output and "\x1b" not in output
    lines = output.splitlines()
    progress = [line for line in lines if re.match(r"epoch \d (train|valid): ", line)]
    assert progress and all(re.fullmatch(r"epoch \d (train|valid): batch \d+/\d+, \d\d:\d\d", line)
                            for line in progress)  # fmt: skip
    rows = [line for line in lines if re.fullmatch(r"\d +\d\.\d{6} +\d\.\d{6} +\d\.\d{6} +\d\d:\d\d", line)]
    assert len(rows) == n_rows, output


def _sigint_by_default() -> None:
    """In the child before exec: SIGINT acts as from a terminal, even when this run has it ignored (a job started
    with `&` ignores it, and learnloop then rightly leaves it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(command: list[str], signum: int, cwd: Path, when: str = " train: batch ") -> tuple[int, str, str]:
    """Run `command`, send `signum` once it prints a line with `when` (by default its first progress line);
    (status, stdout, stderr)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=ENV,
                            preexec_fn=_sigint_by_default)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if when in line:
            proc.send_signal(signum)
            break
    out, err = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + out, err


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_epoch_then_resume_ends_bit_for_bit_as_the_straight_run(learnloop_cmd, straight, tmp_path,
                                                                             signum, status):
    out = tmp_path / "run"
    code, stdout, stderr = _interrupt(_command(learnloop_cmd, *FIT, "--out", out), signum, tmp_path)
    assert code == status, stderr
    assert "Traceback" not in stderr and not (out / "model.pt").exists()
    name = signal.Signals(signum).name
    last = stderr.strip().splitlines()[-1]
    stop = re.fullmatch(rf"learnloop: {name} stopped the fit at epoch (\d+), batch (\d+)/(\d+); saved (\S+)\. "
                        r"Resume with: (.+)", last)  # fmt: skip
    assert stop, stderr
    epoch, it, n = map(int, stop.groups()[:3])
    assert 0 < it < n == 719 and Path(stop[4]) == out / "last.ckpt"  # mid-epoch
    state = torch.load(out / "last.ckpt", weights_only=True)
    assert (state["epoch"], state["iter"]) == (epoch, it)

    again = shlex.split(stop[5])
    assert again[0] == "learnloop" and again[-1] == "--resume"
    result = subprocess.run([*learnloop_cmd, *again[1:]], capture_output=True, text=True, timeout=300, env=ENV,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"learnloop: resuming {out / 'last.ckpt'} at epoch {epoch}, batch {it}/719" in result.stdout
    _assert_plain(stdout + stderr + result.stdout + result.stderr, n_rows=2 - epoch)
    expected, resumed = (torch.load(o / "model.pt", weights_only=True)["model"] for o in (straight, out))
    assert expected.keys() == resumed.keys() and all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert _rows(out) == _rows(straight)


@pytest.mark.parametrize("no_color", [None, "1"])
def test_errors_are_red_on_a_terminal_unless_no_color(learnloop_cmd, tmp_path, no_color):
    import pty

    main_fd, term = pty.openpty()  # a terminal for stderr
    env = {**ENV, "TERM": "xterm", **({"NO_COLOR": no_color} if no_color else {})}
    env.pop("NO_COLOR", None) if no_color is None else None
    proc = subprocess.run(_command(learnloop_cmd, "fit", "digits", "--epochs", "0"), stderr=term, env=env,
                          timeout=300)  # fmt: skip
    os.close(term)
    err = os.read(main_fd, 4096).decode()
    os.close(main_fd)
    assert proc.returncode == 2 and "argument --epochs: must be at least 1" in err
    assert ("\x1b[1;31merror:\x1b[0m" in err) == (no_color is None)


@pytest.mark.parametrize("when", ["last validation", "writing"])
def test_a_signal_after_training_waits_for_the_results(tmp_path, monkeypatch, capsys, when):
    from learnloop import Callback, Learner
    from learnloop.cli import fit as fit_command, main

    def signal_me():
        os.kill(os.getpid(), signal.SIGTERM)

    class InLastValidation(Callback):
        def after_pred(self):
            if not self.training and self.epoch == self.n_epoch - 1 and self.iter == 0:
                signal_me()  # the fit stops at the end of this epoch: there is nothing left to train

    if when == "writing":
        export = Learner.export
        monkeypatch.setattr(Learner, "export", lambda self, *a, **k: (signal_me(), export(self, *a, **k))[1])
    else:
        fit = fit_command.fit_with_schedule
        monkeypatch.setattr(fit_command, "fit_with_schedule", lambda learn, args, cbs, **k: fit(learn, args, [
            *cbs, InLastValidation()], **k))
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)  # unlatched, it raises instead of killing pytest
    try:
        status = main(["fit", "digits", "--epochs", "2", "--no-tensorboard", "--out", str(tmp_path / "run")])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert status == 143, capsys.readouterr().err
    assert "SIGTERM came after training had finished; the results above were written in full" in capsys.readouterr().err
    assert torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0


def test_a_signal_once_everything_is_written_changes_nothing(learnloop_cmd, tmp_path):
    # after its last line the process still spends up to a second in torch's teardown, where a signal used to end
    # it with status -2 and no word
    command = _command(learnloop_cmd, "fit", "digits", "--epochs", "1", "--no-tensorboard", "--out", tmp_path / "r")
    status, out, err = _interrupt(command, signal.SIGINT, tmp_path, when="learnloop: wrote ")
    assert (status, err) in ((0, ""), (130, "learnloop: SIGINT received: writing the results first (send it again "
                                             "to abort now).\nlearnloop: SIGINT came after training had finished; "
                                             "the results above were written in full.\n")), (status, err)


# `learnloop` once its (light) cli module is in, so a signal lands in the command's own start-up (torch's import
# follows), never in Python's, where a Ctrl-C in the first few hundredths of a second is Python's to report
STARTED = "import sys, learnloop.cli as cli; print('in cli', flush=True); cli.entry()"


def _interrupt_start_up(args: list, delay: float) -> tuple[int, str]:
    """Run `learnloop ARGS`, send SIGINT `delay` s after its cli module is imported; (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", STARTED, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_sigint_by_default)
    assert proc.stdout.readline() == "in cli\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, (out, err)
    return proc.returncode, err


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.4])
def test_a_signal_during_start_up_aborts_in_one_line(tmp_path, delay):
    # while torch is still importing: the handler must not import it again (that crashed, or printed a traceback)
    status, err = _interrupt_start_up(["fit", "digits", "--out", tmp_path / "r"], delay)
    assert status == 130 and err.endswith("learnloop: aborted.\n"), err


def test_a_signal_while_the_start_up_latch_is_installed_aborts_in_one_line(tmp_path, monkeypatch, capsys):
    # the race the subprocess test above hits now and then: SIGINT lands before the latch's handler is in, so Python
    # raises it, while `main` installs the latch or on the way into `main`
    from learnloop.cli import app, startup

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(startup.START_UP, "install", ctrl_c)
    assert app.main(["fit", "digits", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "learnloop: aborted.\n" and not (tmp_path / "r").exists()
    monkeypatch.setattr(app, "main", ctrl_c)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # entry's own exit: not to ignore SIGINT in pytest
    with pytest.raises(SystemExit) as stop:
        app.entry()
    assert stop.value.code == 130 and capsys.readouterr().err == "learnloop: aborted.\n"


def test_a_signal_before_an_overwrite_starts_leaves_the_earlier_run(tmp_path, monkeypatch, capsys):
    from learnloop.cli import fit, main, startup

    assert main(["fit", "digits", "--epochs", "1", "--no-tensorboard", "--out", str(tmp_path / "r")]) == 0
    monkeypatch.setattr(startup, "STARTED_AT", time.time())  # a new command, started after that run

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C during the start-up imports, before the earlier run is cleared

    monkeypatch.setattr(fit, "prepare_out", ctrl_c)
    assert main(["fit", "digits", "--out", str(tmp_path / "r"), "--overwrite"]) == 130
    # not "Resume with: ... --resume", which would continue the run the user meant to replace
    assert capsys.readouterr().err == f"learnloop: aborted. The earlier run in {tmp_path / 'r'} is untouched.\n"
    assert (tmp_path / "r" / "model.pt").is_file()
