"""Checkpoints: layout, atomic writes, pruning, safe loading, rebuilding the generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from i2i.engine import checkpoint as ck
from i2i.engine.checkpoint import (
    CheckpointError,
    build_generator,
    build_role,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from tests.test_engine_fixtures import tiny_catalog


def _config(**over):
    cfg = {
        "task": "demo",
        "generator": "tiny_unet",
        "generator_kwargs": {"ngf": 4},
        "discriminator": "patch16",
        "discriminator_kwargs": {"ndf": 4},
        "norm": "batch",
    }
    cfg.update(over)
    return cfg


EXTRA = {"in_channels": 3, "out_channels": 3, "discriminator_in_channels": 6, "size_multiple": 32}


def _save(run, step, *, gen=None, keep=False, keep_last=None, train_state=None):
    gen = gen or {"w": torch.full((2, 3), float(step))}
    return save_checkpoint(
        run,
        step=step,
        epoch=step // 10,
        config=_config(),
        weights={"generator": gen, "discriminator": {"d": torch.ones(1)}},
        train_state=train_state,
        extra=EXTRA,
        keep=keep,
        keep_last=keep_last,
    )


def test_layout_and_latest(tmp_path):
    path = _save(tmp_path, 400, train_state={"step": 400})
    assert path == tmp_path / "checkpoints" / "step_00000400"
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "discriminator.safetensors",
        "generator.safetensors",
        "train_state.pt",
    ]
    latest = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert latest == {"step": 400, "dir": "step_00000400"}
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["step"] == 400 and cfg["epoch"] == 40 and cfg["in_channels"] == 3
    assert cfg["size_multiple"] == 32 and cfg["i2i_version"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("which", ["run", "checkpoints", "step"])
def test_load_accepts_run_checkpoints_or_step_folder(tmp_path, which):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    target = {
        "run": tmp_path,
        "checkpoints": tmp_path / "checkpoints",
        "step": tmp_path / "checkpoints" / "step_00000002",
    }[which]
    ckpt = load_checkpoint(target)
    assert ckpt.step == 2 and ckpt.epoch == 0
    assert torch.equal(ckpt.generator_state["w"], torch.full((2, 3), 2.0))
    assert ckpt.run_dir == tmp_path
    assert torch.equal(
        load_checkpoint(tmp_path / "checkpoints" / "step_00000001").generator_state["w"],
        torch.ones(2, 3),
    )


def test_crash_during_save_keeps_previous_latest(tmp_path, monkeypatch):
    _save(tmp_path, 10)
    real_write = ck._write_bytes

    def failing_write(path, data):
        if path.name == "discriminator.safetensors":
            raise OSError("disk full (simulated)")
        real_write(path, data)

    monkeypatch.setattr(ck, "_write_bytes", failing_write)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 20)
    ckpt = load_checkpoint(tmp_path)  # the run still loads, at its previous latest
    assert ckpt.step == 10
    assert not (tmp_path / "checkpoints" / "step_00000020").exists()
    monkeypatch.setattr(ck, "_write_bytes", real_write)
    _save(tmp_path, 30)  # the next save clears the crashed save's temporary folder
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest.json", "step_00000010", "step_00000030"]


def test_crash_while_replacing_latest_json_keeps_old_pointer(tmp_path, monkeypatch):
    _save(tmp_path, 10)
    real_replace = ck.os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("latest.json"):
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 20)
    assert load_checkpoint(tmp_path).step == 10


def test_saving_the_same_step_twice_replaces_it(tmp_path):
    _save(tmp_path, 5)
    _save(tmp_path, 5, gen={"w": torch.zeros(1)})
    assert torch.equal(load_checkpoint(tmp_path).generator_state["w"], torch.zeros(1))


def test_prune_keeps_last_k_and_marked(tmp_path):
    for step in range(1, 7):
        _save(tmp_path, step, keep=step == 2, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step_00000002", "step_00000005", "step_00000006"]


def test_prune_never_removes_the_checkpoint_just_written(tmp_path):
    _save(tmp_path, 50)  # e.g. from an abandoned continuation
    _save(tmp_path, 20, keep_last=1)  # a resumed run writes an older step
    assert load_checkpoint(tmp_path).step == 20
    assert (tmp_path / "checkpoints" / "step_00000020").is_dir()


def test_a_save_killed_while_pruning_leaves_only_whole_checkpoints(tmp_path, monkeypatch):
    """Pruning deletes file by file; a process killed in the middle must not leave a folder
    that still looks like a checkpoint but lacks weights (seen with SIGKILL in
    test_reliability_kill)."""
    for step in (1, 2):
        _save(tmp_path, step)
    real_rmtree = shutil.rmtree

    def killed_after_one_file(path, ignore_errors=False):
        (Path(path) / "discriminator.safetensors").unlink()
        raise KeyboardInterrupt("killed")  # nothing after this line runs

    monkeypatch.setattr(ck.shutil, "rmtree", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 3, keep_last=2)
    monkeypatch.setattr(ck.shutil, "rmtree", real_rmtree)
    folders = list_checkpoints(tmp_path)
    assert [f.name for f in folders] == ["step_00000002", "step_00000003"]
    for folder in folders:
        assert load_checkpoint(folder).weights["discriminator"]
    _save(tmp_path, 4, keep_last=2)  # the next save clears what the killed one left
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()) == [
        "step_00000003",
        "step_00000004",
    ]


def test_a_same_step_save_killed_between_its_renames_is_finished_on_the_next_use(
    tmp_path, monkeypatch
):
    """Saving a step again moves the old folder aside, then renames the new one into place;
    a kill between the two leaves ``latest.json`` naming a missing folder. Loading (resume)
    reads the new, whole folder where it lies, and the next save puts it back in place
    instead of deleting it."""
    _save(tmp_path, 1)
    _save(tmp_path, 5)
    real_replace = ck.os.replace
    calls = []

    def killed_before_the_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", killed_before_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 5, gen={"w": torch.zeros(1)})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert not (tmp_path / "checkpoints" / "step_00000005").exists()
    resumed = load_checkpoint(tmp_path)
    assert resumed.step == 5 and torch.equal(resumed.generator_state["w"], torch.zeros(1))
    assert not (tmp_path / "checkpoints" / "step_00000005").exists()  # a reader moves nothing
    _save(tmp_path, 6)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step_00000001", "step_00000005", "step_00000006"]


def test_train_state_loads_with_weights_only(tmp_path):
    from i2i.engine.rng import capture_rng_state

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    opt.param_groups[0]["params"][0].grad = torch.ones(2)
    opt.step()
    state = {"step": 3, "optimizer": opt.state_dict(), "rng": capture_rng_state()}
    path = _save(tmp_path, 3, train_state=state)
    raw = torch.load(path / "train_state.pt", weights_only=True)  # no arbitrary unpickling
    assert raw["step"] == 3 and raw["rng"]["numpy"]["keys"].dtype == torch.int64
    assert load_checkpoint(tmp_path).train_state()["optimizer"]["state"][0]["step"] == 1


def test_errors_name_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=str(tmp_path / "empty")):
        load_checkpoint(tmp_path / "empty")
    path = _save(tmp_path / "run", 1)
    (path / "generator.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="generator.safetensors"):
        load_checkpoint(path)
    path = _save(tmp_path / "run2", 1)
    (path / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="train_state.pt"):
        _ = load_checkpoint(_save(tmp_path / "run3", 1)).train_state()


def test_build_generator_from_checkpoint_alone(tmp_path):
    from i2i.engine.build import make_discriminator, make_generator

    cat = tiny_catalog()
    torch.manual_seed(0)
    gen = make_generator(cat, _config(), 3, 3)
    disc = make_discriminator(cat, _config(), 6)
    save_checkpoint(
        tmp_path,
        step=7,
        epoch=0,
        config=_config(),
        weights={"generator": gen.state_dict(), "discriminator": disc.state_dict()},
        extra=EXTRA,
    )
    ckpt = load_checkpoint(tmp_path)
    rebuilt = build_generator(ckpt, cat).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(rebuilt(x), gen.eval()(x))
    assert isinstance(build_role(ckpt, "discriminator", cat), type(disc))
    # weights that do not fit the described architecture are an error naming the file
    ckpt.config["roles"]["generator"]["options"]["ngf"] = 8
    with pytest.raises(CheckpointError, match="generator.safetensors"):
        build_generator(ckpt, cat)


def test_a_checkpoint_s_files_cannot_point_outside_it(tmp_path):
    """latest.json and the role names come from files a user may have been sent: neither may
    make i2i load, resume into or prune another folder."""
    victim = _save(tmp_path / "victim", 6)
    attack = tmp_path / "attack" / "checkpoints"
    attack.mkdir(parents=True)
    for pointer in ("../../victim/checkpoints/step_00000006", str(victim), "step_6/../x"):
        (attack / "latest.json").write_text(json.dumps({"step": 6, "dir": pointer}))
        with pytest.raises(CheckpointError, match="not a step_N folder inside"):
            load_checkpoint(tmp_path / "attack")
    path = _save(tmp_path / "run", 1)
    config = json.loads((path / "config.json").read_text())
    for roles, translators, message in (
        ({"/tmp/elsewhere": config["roles"]["generator"]}, None, "is not a role name"),
        ({"generator": "x"}, None, "not a mapping"),
        (None, {"AtoB": "../../x"}, "not a role name"),
    ):
        bad = {**config, "roles": roles or config["roles"]}
        bad["translators"] = translators or config["translators"]
        (path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=f"config.json: .*{message}"):
            load_checkpoint(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"step": "four"}, "'step' and 'epoch' must be whole numbers"),
        ({"roles.options": [1]}, "options must be a mapping"),
        ({"roles.options": {"ngf": "eight"}}, "ngf must be a positive int"),
        ({"roles.name": "nosuchgen"}, "Unknown generator 'nosuchgen'"),
    ],
)
def test_a_malformed_checkpoint_config_is_an_error_naming_it(tmp_path, change, message):
    path = _save(tmp_path / "run", 1)
    config = json.loads((path / "config.json").read_text())
    for key, value in change.items():
        if key.startswith("roles."):
            config["roles"]["generator"][key.split(".")[1]] = value
        else:
            config[key] = value
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=str(path / "config.json")) as err:
        build_generator(load_checkpoint(path), tiny_catalog())
    assert message in str(err.value)
