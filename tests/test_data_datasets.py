"""Dataset layouts, directions, splits, bad files, skip mode and the joint transform."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from i2i import Task
from i2i.data import (
    AlignedDataset,
    DatasetError,
    ImageReadError,
    JointTransform,
    PairedFolderDataset,
    PreprocessConfig,
    SingleFolderDataset,
    build_dataset,
    read_image,
    write_image,
)
from i2i.data.transforms import MODES, item_generator

PAIRED = Task(summary="paired demo", in_channels=3, out_channels=3, layout="aligned")
FOLDERS = Task(summary="folders demo", in_channels=3, out_channels=3, layout="folders")
SMALL = PreprocessConfig(load_size=36, crop_size=32)


def single_task(default_data=None) -> Task:
    return Task(
        summary="single demo",
        in_channels=3,
        out_channels=3,
        layout="single",
        make_pair=lambda img, generator=None: (img * 2 - 1, img * 2 - 1),
        default_data=default_data,
    )


def solid(color, h=40, w=40) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float32).view(3, 1, 1).expand(3, h, w).clone()


def write_ab(path: Path, a: torch.Tensor, b: torch.Tensor) -> Path:
    return write_image(torch.cat([a, b], dim=2), path)


RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


@pytest.fixture
def aligned_root(tmp_path) -> Path:
    for split, n in (("train", 3), ("val", 2)):
        for i in range(1, n + 1):
            write_ab(tmp_path / split / f"{i}.png", solid(RED), solid(BLUE))
    return tmp_path


# ---- layouts and directions ----------------------------------------------------------------


def test_aligned_items_and_direction(aligned_root):
    ds = build_dataset(PAIRED, aligned_root, preprocess=SMALL)
    assert isinstance(ds, AlignedDataset) and len(ds) == 3
    item = ds[1]
    assert item["input"].shape == (3, 32, 32) and item["target"].shape == (3, 32, 32)
    assert item["path"].endswith("2.png") and item["index"] == 1
    assert torch.allclose(item["input"], solid(RED, 32, 32) * 2 - 1)  # A = red, AtoB
    assert torch.allclose(item["target"], solid(BLUE, 32, 32) * 2 - 1)
    flipped = build_dataset(PAIRED, aligned_root, direction="BtoA", preprocess=SMALL)[1]
    assert torch.allclose(flipped["input"], item["target"])
    assert torch.allclose(flipped["target"], item["input"])
    assert len(build_dataset(PAIRED, aligned_root, "val", preprocess=SMALL)) == 2


def test_task_direction_is_the_default(aligned_root):
    task = Task(summary="b to a", in_channels=3, out_channels=3, layout="aligned", direction="BtoA")
    ds = build_dataset(task, aligned_root, preprocess=SMALL)
    assert ds.direction == "BtoA"
    assert torch.allclose(ds[0]["input"], solid(BLUE, 32, 32) * 2 - 1)


@pytest.mark.parametrize("layout", ["split/A", "A/split"])
def test_paired_folders(tmp_path, layout):
    for stem, suffix in (("1", ".png"), ("2", ".jpg"), ("10", ".png")):
        a_dir = tmp_path / ("train/A" if layout == "split/A" else "A/train")
        b_dir = tmp_path / ("train/B" if layout == "split/A" else "B/train")
        write_image(solid(RED), a_dir / f"{stem}{suffix}")
        write_image(solid(BLUE), b_dir / f"{stem}.png")
    ds = build_dataset(FOLDERS, tmp_path, preprocess=SMALL, direction="BtoA")
    assert isinstance(ds, PairedFolderDataset) and len(ds) == 3
    assert [Path(p).stem for p in ds.paths] == ["1", "2", "10"]
    item = ds[2]
    assert torch.allclose(item["input"], solid(BLUE, 32, 32) * 2 - 1, atol=0.02)
    # a paired task declared 'aligned' reads paired folders too
    assert isinstance(build_dataset(PAIRED, tmp_path, preprocess=SMALL), PairedFolderDataset)


def test_single_folder_and_flat_root(tmp_path):
    for i in range(3):
        write_image(torch.rand(3, 40, 40), tmp_path / f"{i}.png")
    ds = build_dataset(single_task(), tmp_path, "val", preprocess=SMALL)  # no val/: the root
    assert isinstance(ds, SingleFolderDataset) and len(ds) == 3
    assert ds[0]["input"].shape == (3, 32, 32)


def test_default_data_used_when_root_is_none(aligned_root):
    ds = build_dataset(single_task(lambda: aligned_root), None, preprocess=SMALL)
    assert len(ds) == 3
    with pytest.raises(DatasetError, match="no built-in data; pass a data folder"):
        build_dataset(PAIRED, None)


def test_dataloader_batches(aligned_root):
    ds = build_dataset(PAIRED, aligned_root, preprocess=SMALL)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["input"].shape == (3, 3, 32, 32) and len(batch["path"]) == 3
    assert batch["index"].tolist() == [0, 1, 2]


# ---- clear errors --------------------------------------------------------------------------


def test_missing_split_lists_what_was_looked_for(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError) as info:
        build_dataset(PAIRED, tmp_path, "val")
    msg = str(info.value)
    assert str(tmp_path / "val") in msg and "directly in" in msg and "train" in msg
    assert str(tmp_path / "val" / "A") in msg  # paired folders were looked for too
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset(PAIRED, tmp_path / "nowhere")


def test_empty_split_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="empty") as info:
        build_dataset(single_task(), tmp_path)
    assert str(tmp_path / "train") in str(info.value)


def test_odd_width_names_file(tmp_path):
    path = write_image(torch.rand(3, 20, 41), tmp_path / "train" / "odd.png")
    ds = build_dataset(PAIRED, tmp_path, preprocess=SMALL)
    with pytest.raises(ImageReadError, match="even width.*41") as info:
        ds[0]
    assert str(path) in str(info.value)


def test_missing_partner_names_both(tmp_path):
    write_image(solid(RED), tmp_path / "train" / "A" / "1.png")
    write_image(solid(RED), tmp_path / "train" / "A" / "2.png")
    write_image(solid(BLUE), tmp_path / "train" / "B" / "1.png")
    with pytest.raises(DatasetError, match="no partner") as info:
        build_dataset(FOLDERS, tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "train" / "A" / "2.png") in msg and str(tmp_path / "train" / "B") in msg
    ds = build_dataset(FOLDERS, tmp_path, on_bad_image="skip", preprocess=SMALL)
    assert len(ds) == 1 and len(ds.skipped) == 1 and ds.skipped[0][0].endswith("2.png")


def test_size_mismatch_names_both(tmp_path):
    a = write_image(solid(RED, 40, 40), tmp_path / "train" / "A" / "1.png")
    b = write_image(solid(BLUE, 40, 48), tmp_path / "train" / "B" / "1.png")
    ds = build_dataset(FOLDERS, tmp_path, preprocess=SMALL)
    with pytest.raises(ImageReadError, match="different size") as info:
        ds[0]
    assert str(a) in str(info.value) and str(b) in str(info.value)


def test_crop_mode_too_small_names_file(tmp_path):
    path = write_image(torch.rand(3, 20, 20), tmp_path / "small.png")
    ds = build_dataset(single_task(), tmp_path, preprocess=PreprocessConfig(32, 32, mode="crop"))
    with pytest.raises(ImageReadError, match="smaller than crop_size 32") as info:
        ds[0]
    assert str(path) in str(info.value)


def test_bad_task_output_is_reported(tmp_path):
    write_image(torch.rand(3, 40, 40), tmp_path / "1.png")
    task = Task(
        summary="broken",
        in_channels=2,
        out_channels=3,
        layout="single",
        make_pair=lambda img, generator=None: (img, img),
    )
    with pytest.raises(
        ValueError, match=r"'broken' make_pair returned input of shape \(3, 32, 32\)"
    ):
        build_dataset(task, tmp_path, preprocess=SMALL)[0]


# ---- skip mode -----------------------------------------------------------------------------


def _mixed_folder(root: Path) -> list[Path]:
    good = [write_image(torch.rand(3, 40, 40), root / f"{i}.png") for i in (1, 3, 5)]
    (root / "2.jpg").write_bytes(b"")
    (root / "4.jpg").write_text("not an image")
    return good


def test_skip_mode_serves_good_files_and_counts_bad(tmp_path):
    good = _mixed_folder(tmp_path)
    ds = build_dataset(single_task(), tmp_path, preprocess=SMALL, on_bad_image="skip")
    assert len(ds) == 5
    served = {ds[i]["path"] for i in range(len(ds))}
    assert served == {str(p) for p in good}
    assert sorted(Path(p).name for p, _ in ds.skipped) == ["2.jpg", "4.jpg"]
    reasons = " ".join(r for _, r in ds.skipped)
    assert "empty" in reasons and "not an image" in reasons
    for _ in range(2):  # bad files are skipped once, not recounted
        ds[1]
    assert len(ds.skipped) == 2


def test_error_mode_raises_on_first_bad_file(tmp_path):
    _mixed_folder(tmp_path)
    ds = build_dataset(single_task(), tmp_path, preprocess=SMALL)
    ds[0]
    with pytest.raises(ImageReadError, match=r"2\.jpg.*empty"):
        ds[1]


def test_validate_scans_everything(tmp_path):
    _mixed_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"2 bad file\(s\)") as info:
        build_dataset(single_task(), tmp_path, preprocess=SMALL).validate()
    assert "2.jpg" in str(info.value) and "4.jpg" in str(info.value)
    ds = build_dataset(single_task(), tmp_path, preprocess=SMALL, on_bad_image="skip")
    assert len(ds.validate()) == 2 and len(ds.skipped) == 2


def test_all_bad_is_an_error(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"")
    ds = build_dataset(single_task(), tmp_path, on_bad_image="skip")
    with pytest.raises(DatasetError, match="Every file"):
        ds[0]


# ---- joint transform: alignment, reproducibility, modes ------------------------------------


def _pattern_ab(tmp_path: Path, n: int, relation) -> Path:
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        a = torch.rand(3, 48, 56, generator=gen)
        write_ab(tmp_path / f"{i}.png", a, relation(a))
    return tmp_path


@pytest.mark.parametrize("mode", MODES)
def test_joint_transform_keeps_pairs_aligned(tmp_path, mode):
    """A and B halves hold the same random pattern (B = A, or B = 1 - A): after any number of
    random resizes, crops and flips the input and target must still match pixel for pixel."""
    cfg = PreprocessConfig(load_size=40, crop_size=32, mode=mode)
    same = build_dataset(PAIRED, _pattern_ab(tmp_path / "same", 3, lambda a: a), preprocess=cfg)
    inverse = build_dataset(
        PAIRED, _pattern_ab(tmp_path / "inv", 3, lambda a: 1 - a), preprocess=cfg
    )
    outputs = set()
    for epoch in range(12):
        same.set_epoch(epoch)
        inverse.set_epoch(epoch)
        for i in range(3):
            item = same[i]
            assert torch.equal(item["input"], item["target"])
            inv = inverse[i]
            assert torch.allclose(inv["input"], -inv["target"], atol=1e-5)
            outputs.add((i, *item["input"][:, 0, 0].tolist()))
    assert len(outputs) > 3  # flips happen in every mode
    if "crop" in mode:  # and crops move
        assert len(outputs) > 3 * 2


def test_transform_is_reproducible_per_seed_epoch_index(tmp_path):
    root = _pattern_ab(tmp_path, 3, lambda a: a)
    ds = build_dataset(PAIRED, root, preprocess=SMALL, seed=7)
    again = build_dataset(PAIRED, root, preprocess=SMALL, seed=7)
    other_seed = build_dataset(PAIRED, root, preprocess=SMALL, seed=8)
    first = [ds[i]["input"] for i in range(3)]
    assert all(torch.equal(a, again[i]["input"]) for i, a in enumerate(first))
    assert not all(torch.equal(a, other_seed[i]["input"]) for i, a in enumerate(first))
    ds.set_epoch(1)
    assert not all(torch.equal(a, ds[i]["input"]) for i, a in enumerate(first))
    ds.set_epoch(0)
    assert all(torch.equal(a, ds[i]["input"]) for i, a in enumerate(first))


def test_eval_transform_is_deterministic_resize(tmp_path):
    _pattern_ab(tmp_path, 1, lambda a: a)
    ds = build_dataset(PAIRED, tmp_path, preprocess=SMALL, train=False)
    outs = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        outs.append(ds[0]["input"])
    assert outs[0].shape == (3, 32, 32)
    assert all(torch.equal(outs[0], o) for o in outs)
    a = read_image(tmp_path / "0.png")[:, :, :56]
    expected = JointTransform(SMALL, train=False)([a])[0] * 2 - 1
    assert torch.equal(outs[0], expected)


@pytest.mark.parametrize(
    ("mode", "train", "size", "expected"),
    [
        ("none", True, (50, 38), (48, 40)),
        ("none", False, (50, 38), (48, 40)),
        ("scale_width", True, (30, 60), (40, 80)),
        ("scale_width", False, (30, 60), (16, 32)),
        ("scale_width_and_crop", True, (30, 60), (32, 32)),
        ("crop", True, (50, 60), (32, 32)),
        ("resize_and_crop", False, (50, 60), (32, 32)),
    ],
)
def test_mode_sizes(mode, train, size, expected):
    t = JointTransform(PreprocessConfig(load_size=80, crop_size=32, mode=mode), train=train)
    out = t([torch.rand(3, *size)], item_generator(0, 0, 0))[0]
    assert tuple(out.shape[-2:]) == expected
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_flip_off_and_config_errors():
    img = torch.rand(3, 8, 8)
    t = JointTransform(PreprocessConfig(load_size=8, crop_size=8, mode="crop", flip=False))
    assert all(torch.equal(t([img], item_generator(0, 0, i))[0], img) for i in range(10))
    with pytest.raises(ValueError, match="preprocess mode must be one of"):
        PreprocessConfig(mode="zoom")
    with pytest.raises(ValueError, match="must not exceed load_size"):
        PreprocessConfig(load_size=10, crop_size=20)
    with pytest.raises(ValueError, match="one size"):
        JointTransform()([torch.rand(3, 8, 8), torch.rand(3, 8, 9)])
