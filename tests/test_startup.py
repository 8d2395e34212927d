"""Start-up cost: `import learnloop`, `learnloop --help` and `--print-config` import no torch; the loop imports no
plotting, TensorBoard or scikit-learn until they are used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "matplotlib", "tensorboard", "sklearn")


def _modules_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; which of HEAVY it imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_learnloop_imports_no_torch():
    assert not any(_modules_after("import learnloop").values())


def test_help_argument_errors_and_print_config_answer_without_torch():
    for argv in (["--help"], ["fit", "--help"], ["fit"], ["fit", "digits", "--epochs", "x"],
                 ["fit", "mnist", "--wd", "0.1", "--print-config"], ["lr-find", "digits", "--print-config"]):
        code = f"from learnloop.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        assert not any(_modules_after(code).values()), argv


def test_the_loop_imports_no_plotting_tensorboard_or_sklearn():
    loaded = _modules_after("from learnloop import Learner, fit\nfrom learnloop.callbacks import TensorBoardCallback")
    assert loaded["torch"] and not (loaded["matplotlib"] or loaded["tensorboard"] or loaded["sklearn"])


def test_lazy_names_resolve_and_unknown_names_fail():
    import learnloop

    assert learnloop.Learner.__name__ == "Learner" and "Learner" in dir(learnloop)
    try:
        learnloop.Lerner
    except AttributeError as e:
        assert "Lerner" in str(e)
    else:
        raise AssertionError("learnloop.Lerner should not exist")
