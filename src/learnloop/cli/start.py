"""`fit --from RUN`: start from an earlier run's network: its architecture, its body's weights, and a new head for
this data's classes."""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError, SettingError


def read_run(path: str) -> dict[str, Any]:
    """The model file of the run `--from` names (a run folder or its model.pt), which must say how to rebuild it."""
    from ..model_file import read_model_file

    record = read_model_file(path)
    if record["arch"] is None:
        raise CheckpointError(f"--from {path}: {record['path']} holds weights but not their architecture (written by "
                              f"an older learnloop): start from a run made since, or train one.")
    return record


def run_arch(record: dict[str, Any]) -> str:
    """The `--arch` name of the run a model file comes from."""
    arch = record["arch"]
    return arch["kwargs"]["name"] if arch["name"] == "hub_arch" else arch["name"]


def check_start(record: dict[str, Any], path: str, arch: str | None, kind: str, channels: int) -> None:
    """A one-line SettingError when this run can't start from the earlier run: another `arch` (None: not given),
    another kind of input (images vs arrays), or images of other channels."""
    saved = run_arch(record)
    if arch is not None and arch != saved:
        raise SettingError(f"--from {path} is a {saved} run and this run asks for --arch {arch}: drop --arch to "
                           f"fine-tune the {saved}, or start from a {arch} run.")
    given = record.get("input") or {}
    if given.get("kind") != kind:
        raise SettingError(f"--from {path} was trained on {_describe(given.get('kind'))} and this data is "
                           f"{_describe(kind)}: start from a run on the same kind of input.")
    saved_channels = record["arch"]["kwargs"].get("in_channels", channels)
    if saved_channels != channels:
        raise SettingError(f"--from {path} was trained on {saved_channels}-channel inputs and these have {channels}: "
                           f"start from a run on {'colour' if channels == 3 else 'grey'} images.")


def _describe(kind: str | None) -> str:
    return {"image": "images (a folder of photos)", "array": "arrays (digits or mnist)"}.get(kind, f"{kind} inputs")


def model_from_run(record: dict[str, Any], n_classes: int) -> Any:
    """The earlier run's architecture with its body's weights and a fresh head for `n_classes`."""
    from ..layer_groups import load_body
    from ..nn import build_arch

    model = build_arch(record["arch"], n_classes=n_classes)
    load_body(model, record["model"])
    return model


def check_arch(config: Any) -> None:
    """A torchvision/timm `--arch` name they lack or can't import, or `--pretrained` for learnloop's own (which has no
    published weights): a one-line error now, before the data loads."""
    from .config import ARCHS

    if config.arch in ARCHS:
        if config.pretrained:
            raise SettingError(f"--pretrained loads a torchvision or timm model's published weights; {config.arch} is "
                               f"learnloop's own and has none. Drop --pretrained, or start from a run with --from RUN.")
        return
    from ..nn.hub import hub_source

    hub_source(config.arch)


def start_from(config: Any, arch_given: bool) -> tuple[Any, dict[str, Any]]:
    """`--from RUN`: the earlier run's model file, checked against this run (`--arch` if given, the kind of input
    and its channels), and the config with the earlier run's arch. Before the data loads: a mistake fails at once."""
    from dataclasses import replace

    from .config import is_folder

    record = read_run(config.start_from)
    folder = is_folder(config.dataset)
    check_start(record, config.start_from, config.arch if arch_given else None, "image" if folder else "array",
                3 if folder else 1)
    return replace(config, arch=run_arch(record)), record
