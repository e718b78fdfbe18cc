"""Unpaired data: trainA/ trainB/ folders and ``unpaired=True`` over paired data."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from i2i import Task
from i2i.data import (
    DatasetError,
    ImageReadError,
    PreprocessConfig,
    UnpairedAlignedDataset,
    UnpairedFolderDataset,
    build_dataset,
    write_image,
)
from i2i.task import LAYOUTS
from i2i.testing import check_task

UNPAIRED = Task(summary="unpaired demo", in_channels=3, out_channels=3, layout="unpaired")
PAIRED = Task(summary="paired demo", in_channels=3, out_channels=3, layout="aligned")
FOLDERS = Task(summary="folders demo", in_channels=3, out_channels=3, layout="folders")
SMALL = PreprocessConfig(load_size=36, crop_size=32)
EXACT = PreprocessConfig(load_size=32, crop_size=32, flip=False)  # no resize, crop or flip
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def solid(color, h=32, w=32) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float32).view(3, 1, 1).expand(3, h, w).clone()


def level(value: float) -> torch.Tensor:
    """A gray image whose level survives PNG (multiples of 1/255 are exact)."""
    return solid((value, value, value))


def write_domains(root: Path, split: str = "train", a: int = 3, b: int = 5) -> Path:
    for i in range(a):
        write_image(solid(RED), root / f"{split}A" / f"a{i}.png")
    for i in range(b):
        write_image(solid(BLUE), root / f"{split}B" / f"b{i}.png")
    return root


def write_ab_files(root: Path, n: int) -> Path:
    """A|B files whose A half has level 10 i / 255 and B half 10 i / 255 + 5 / 255."""
    for i in range(n):
        a, b = level(10 * i / 255), level((10 * i + 5) / 255)
        write_image(torch.cat([a, b], dim=2), root / "train" / f"{i}.png")
    return root


def level_of(t: torch.Tensor) -> int:
    """The level written, from a model tensor in [-1, 1], in 1/255 units."""
    return round(float((t.mean() + 1) / 2) * 255)


# ---- layout, lengths, direction ------------------------------------------------------------


def test_unpaired_is_a_layout():
    assert "unpaired" in LAYOUTS
    check_task(UNPAIRED, name="unpaired demo")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_domain_folders_found_and_length_is_the_larger_side(tmp_path, split):
    write_domains(tmp_path, split, a=3, b=5)
    ds = build_dataset(UNPAIRED, tmp_path, split, preprocess=SMALL)
    assert isinstance(ds, UnpairedFolderDataset) and ds.layout == "unpaired"
    assert ds.paired is False and len(ds) == 5
    items = [ds[i] for i in range(len(ds))]
    assert [Path(it["path"]).name for it in items] == [
        "a0.png",
        "a1.png",
        "a2.png",
        "a0.png",
        "a1.png",
    ]
    assert all(Path(it["target_path"]).parent.name == f"{split}B" for it in items)
    assert all(
        it["input"].shape == (3, 32, 32) and it["target"].shape == (3, 32, 32) for it in items
    )
    assert all(it["input"][0].mean() > 0.9 and it["target"][2].mean() > 0.9 for it in items)
    assert "3" in repr(ds) and "5 items" in repr(ds)


def test_more_inputs_than_targets(tmp_path):
    ds = build_dataset(UNPAIRED, write_domains(tmp_path, a=4, b=1), preprocess=SMALL)
    assert len(ds) == 4
    assert [Path(ds[i]["path"]).name for i in range(4)] == [f"a{i}.png" for i in range(4)]
    assert {Path(ds[i]["target_path"]).name for i in range(4)} == {"b0.png"}


def test_direction_picks_the_input_folder(tmp_path):
    write_domains(tmp_path, a=3, b=5)
    ds = build_dataset(UNPAIRED, tmp_path, direction="BtoA", preprocess=SMALL)
    assert len(ds) == 5
    item = ds[4]
    assert Path(item["path"]).name == "b4.png" and Path(item["target_path"]).parent.name == "trainA"
    assert item["input"][2].mean() > 0.9 and item["target"][0].mean() > 0.9  # blue in, red out
    btoa = Task(
        summary="b to a", in_channels=3, out_channels=3, layout="unpaired", direction="BtoA"
    )
    assert Path(build_dataset(btoa, tmp_path, preprocess=SMALL)[0]["path"]).name == "b0.png"


def test_other_datasets_are_paired(tmp_path):
    write_image(torch.cat([solid(RED), solid(BLUE)], dim=2), tmp_path / "train" / "1.png")
    assert build_dataset(PAIRED, tmp_path, preprocess=SMALL).paired is True


def test_dataloader_batches(tmp_path):
    ds = build_dataset(UNPAIRED, write_domains(tmp_path, a=3, b=5), preprocess=SMALL)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["input"].shape == (4, 3, 32, 32) and batch["target"].shape == (4, 3, 32, 32)
    assert len(batch["target_path"]) == 4 and batch["index"].tolist() == [0, 1, 2, 0]
    copy = pickle.loads(pickle.dumps(ds))  # as DataLoader workers receive it
    assert copy[3]["target_path"] == ds[3]["target_path"]


# ---- unpaired=True over paired data: independence and determinism --------------------------


def test_ab_halves_are_drawn_apart(tmp_path):
    n = 8
    ds = build_dataset(PAIRED, write_ab_files(tmp_path, n), unpaired=True, preprocess=EXACT)
    assert isinstance(ds, UnpairedAlignedDataset) and ds.paired is False and len(ds) == n
    same = 0
    for i in range(n):
        item = ds[i]
        src, dst = int(Path(item["path"]).stem), int(Path(item["target_path"]).stem)
        assert src == i
        assert level_of(item["input"]) == 10 * src  # the A half of file i
        assert level_of(item["target"]) == 10 * dst + 5  # the B half of the drawn file
        same += src == dst
    assert same < n // 2  # not the identity pairing
    btoa = build_dataset(PAIRED, tmp_path, unpaired=True, direction="BtoA", preprocess=EXACT)[
        3
    ]  # BtoA: the input is a B half, the target an A half
    assert level_of(btoa["input"]) == 35 and level_of(btoa["target"]) % 10 == 0


def test_paired_folders_read_unpaired_need_no_matching_names(tmp_path):
    for name in ("1", "2", "3"):
        write_image(solid(RED), tmp_path / "train" / "A" / f"{name}.png")
    write_image(solid(BLUE), tmp_path / "train" / "B" / "other.png")
    with pytest.raises(DatasetError, match="no partner"):
        build_dataset(FOLDERS, tmp_path)
    ds = build_dataset(FOLDERS, tmp_path, unpaired=True, preprocess=SMALL)
    assert len(ds) == 3 and ds.paired is False
    assert Path(ds[2]["target_path"]).name == "other.png"


def _draws(ds) -> list[str]:
    return [Path(ds[i]["target_path"]).stem for i in range(len(ds))]


def test_draws_are_deterministic_given_seed_and_epoch(tmp_path):
    write_ab_files(tmp_path, 12)
    make = lambda seed: build_dataset(  # noqa: E731
        PAIRED, tmp_path, unpaired=True, seed=seed, preprocess=SMALL
    )
    first, again = make(0), make(0)
    assert _draws(first) == _draws(again)
    assert torch.equal(first[5]["input"], again[5]["input"])
    assert torch.equal(first[5]["target"], again[5]["target"])
    assert _draws(make(1)) != _draws(first)
    again.set_epoch(1)
    assert _draws(again) != _draws(first)  # a new epoch draws new partners
    again.set_epoch(0)
    assert _draws(again) == _draws(first)


def test_each_side_has_its_own_augmentation(tmp_path):
    """One identical random pattern in trainA and trainB: a joint transform would crop and flip
    both alike; here the two sides' crops and flips differ."""
    pattern = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    write_image(pattern, tmp_path / "trainA" / "p.png")
    write_image(pattern, tmp_path / "trainB" / "p.png")
    ds = build_dataset(UNPAIRED, tmp_path, preprocess=SMALL)
    differ = 0
    for epoch in range(10):
        ds.set_epoch(epoch)
        item = ds[0]
        differ += not torch.allclose(item["input"], item["target"])
    assert differ >= 8
    fixed = build_dataset(UNPAIRED, tmp_path, preprocess=SMALL, train=False)[0]
    assert torch.allclose(fixed["input"], fixed["target"])  # evaluation: no random draw


# ---- errors and bad files ------------------------------------------------------------------


def test_missing_domain_folder_is_named(tmp_path):
    write_image(solid(RED), tmp_path / "trainA" / "a.png")
    with pytest.raises(DatasetError, match="does not exist") as info:
        build_dataset(UNPAIRED, tmp_path)
    assert str(tmp_path / "trainB") in str(info.value)


def test_empty_domain_folder_is_named(tmp_path):
    write_image(solid(RED), tmp_path / "trainA" / "a.png")
    (tmp_path / "trainB").mkdir()
    with pytest.raises(DatasetError, match="empty") as info:
        build_dataset(UNPAIRED, tmp_path)
    assert str(tmp_path / "trainB") in str(info.value)


def test_nothing_found_lists_what_was_looked_for(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError) as info:
        build_dataset(UNPAIRED, tmp_path, "val")
    msg = str(info.value)
    assert f"{tmp_path / 'valA'} + {tmp_path / 'valB'}" in msg and str(tmp_path / "val") in msg
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset(UNPAIRED, tmp_path / "nowhere")


def test_single_task_cannot_be_unpaired(tmp_path):
    single = Task(
        summary="single demo",
        in_channels=3,
        out_channels=3,
        layout="single",
        make_pair=lambda img, generator=None: (img, img),
    )
    with pytest.raises(ValueError, match="no two domains"):
        build_dataset(single, tmp_path, unpaired=True)


def _bad_target(root: Path) -> Path:
    write_domains(root, a=4, b=1)
    bad = root / "trainB" / "b1.png"
    bad.write_text("not an image")
    return bad


def test_bad_file_is_named_in_error_mode(tmp_path):
    bad = _bad_target(tmp_path)
    ds = build_dataset(UNPAIRED, tmp_path, preprocess=SMALL)
    targets = [Path(ds.records[ds.target_draw(i)[1]][0]) for i in range(len(ds))]
    assert bad in targets  # some item draws the bad file
    with pytest.raises(ImageReadError, match="not an image") as info:
        for i in range(len(ds)):
            ds[i]
    assert str(bad) in str(info.value)
    with pytest.raises(DatasetError, match=r"1 bad file\(s\)") as info:
        ds.validate()
    assert str(bad) in str(info.value)


def test_skip_mode_uses_the_next_good_file_of_the_same_side(tmp_path):
    bad = _bad_target(tmp_path)
    ds = build_dataset(UNPAIRED, tmp_path, preprocess=SMALL, on_bad_image="skip")
    items = [ds[i] for i in range(len(ds))]
    assert {Path(it["target_path"]).name for it in items} == {"b0.png"}
    assert [Path(it["path"]).name for it in items] == [f"a{i}.png" for i in range(4)]
    assert ds.skipped == [(str(bad), ds.skipped[0][1])] and "not an image" in ds.skipped[0][1]
    assert any(str(bad) in it["skipped"] for it in items)
    for i in range(len(ds)):  # skipped once, not recounted
        ds[i]
    assert len(ds.skipped) == 1


def test_all_bad_on_one_side_is_an_error_naming_it(tmp_path):
    write_domains(tmp_path, a=2, b=0)
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "b.png").write_bytes(b"")
    ds = build_dataset(UNPAIRED, tmp_path, preprocess=SMALL, on_bad_image="skip")
    with pytest.raises(DatasetError, match="Every file") as info:
        ds[0]
    assert str(tmp_path / "trainB") in str(info.value)
