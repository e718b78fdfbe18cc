"""The CycleGAN image pool: filling, swap statistics, size 0, state round trip."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import torch
from i2i_cyclegan.pool import ImagePool


def labelled(*labels: float) -> torch.Tensor:
    """A batch of images each filled with its label."""
    return torch.tensor(labels, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone()


def labels(batch: torch.Tensor) -> list[float]:
    return [float(img.mean()) for img in batch]


def test_filling_returns_and_stores_the_new_images():
    pool = ImagePool(4, seed=0)
    out = pool.query(labelled(1, 2, 3))
    assert labels(out) == [1, 2, 3] and len(pool) == 3
    out = pool.query(labelled(4, 5, 6, 7, 8))  # 4 fills the pool, then 5..8 may swap
    assert labels(out)[0] == 4 and len(pool) == 4
    held = labels(torch.stack(pool.images))
    # nothing is lost or duplicated: what came back plus what is held is what went in
    assert sorted(labels(out)[1:] + held) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_swap_statistics_with_a_fixed_seed():
    pool = ImagePool(10, generator=torch.Generator().manual_seed(1))
    pool.query(labelled(*range(10)))  # full with labels 0..9
    given, returned_old = 0, 0
    inside = Counter(range(10))  # images in the pool, by label
    for step in range(200):
        new = labelled(*(100 + 10 * step + k for k in range(10)))
        out = pool.query(new)
        assert out.shape == new.shape
        for sent, got in zip(labels(new), labels(out), strict=True):
            given += 1
            inside[sent] += 1  # it enters the pool, or comes straight back
            assert inside[got] == 1  # what comes back went in before and comes back once
            inside[got] -= 1
            returned_old += got != sent
        assert len(pool) == 10
    assert 0.45 < returned_old / given < 0.55  # each image swapped with probability 1/2
    held = labels(torch.stack(pool.images))
    assert sorted(held) == sorted(k for k, n in inside.items() if n)  # the rest is in the pool


def test_same_seed_same_draws_other_seed_others():
    batches = [labelled(*range(10 * i, 10 * i + 10)) for i in range(5)]

    def run(seed):
        pool = ImagePool(5, seed=seed)
        return [labels(pool.query(b)) for b in batches]

    assert run(0) == run(0) and run(0) != run(1)


def test_size_zero_passes_through():
    pool = ImagePool(0)
    fake = torch.rand(3, 3, 4, 4, requires_grad=True) * 2
    out = pool.query(fake)
    assert torch.equal(out, fake) and not out.requires_grad and len(pool) == 0
    assert pool.state_dict()["count"] == 0


def test_stored_and_returned_images_are_detached():
    pool = ImagePool(2, seed=0)
    fake = torch.rand(4, 3, 4, 4, requires_grad=True) * 2
    out = pool.query(fake)
    assert not out.requires_grad and not any(t.requires_grad for t in pool.images)


def test_state_round_trip_through_weights_only_load():
    pool = ImagePool(6, generator=torch.Generator().manual_seed(3))
    for i in range(4):
        pool.query(torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(i)))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["count"] == 6 and len(state["images"]) == 6

    resumed = ImagePool(6, seed=99)
    resumed.load_state_dict(state)
    for i in range(3):  # the resumed pool returns what the original one returns
        batch = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(10 + i))
        assert torch.equal(resumed.query(batch), pool.query(batch))
    assert all(torch.equal(a, b) for a, b in zip(resumed.images, pool.images, strict=True))


def test_bad_sizes_and_states_are_refused():
    with pytest.raises(ValueError, match="integer >= 0"):
        ImagePool(-1)
    small = ImagePool(2)
    with pytest.raises(ValueError, match="more than this pool's size 2"):
        small.load_state_dict({"images": [torch.zeros(3, 4, 4)] * 3, "count": 3})
    with pytest.raises(ValueError, match="'count' is 2"):
        small.load_state_dict({"images": [torch.zeros(3, 4, 4)], "count": 2})


class OfficialPool:
    """The official code's ImagePool, with its draws from a torch generator as i2i's are."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator, self.images = size, generator, []

    def query(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                index = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return out


def _same_as_official(pool: ImagePool, official: OfficialPool, batch: torch.Tensor) -> None:
    got, want = pool.query(batch), official.query(batch)
    assert len(got) == len(want)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert len(pool) == len(official.images)
    assert all(torch.equal(g, w) for g, w in zip(pool.images, official.images, strict=True))


@pytest.mark.parametrize("size", [1, 3, 7])
def test_the_bank_gives_and_keeps_what_the_official_pool_would(size):
    pool = ImagePool(size, generator=torch.Generator().manual_seed(5))
    official = OfficialPool(size, torch.Generator().manual_seed(5))
    sizes = torch.Generator().manual_seed(size)
    for step in range(40):  # filling, then full; batches of 1-3 (a slot may be hit twice)
        n = int(torch.randint(1, 4, (), generator=sizes))
        batch = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(step))
        _same_as_official(pool, official, batch)


def test_images_of_other_sizes_are_kept_as_the_official_pool_keeps_them():
    """``--preprocess scale_width`` at batch 1: each image its own size; the pool goes on as a
    list, and back to one bank when every stored image has the new images' size."""
    pool = ImagePool(3, generator=torch.Generator().manual_seed(2))
    official = OfficialPool(3, torch.Generator().manual_seed(2))
    heights = [8, 8, 8, 8, 12, 8, 12, 16, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    for step, h in enumerate(heights):
        image = torch.rand(1, 3, h, 8, generator=torch.Generator().manual_seed(step))
        _same_as_official(pool, official, image)
    assert pool._bank is not None  # the last stretch of one size made a bank again


def test_pool_draws_made_first_then_applied_give_what_a_query_gives():
    a, b = ImagePool(2, seed=4), ImagePool(2, seed=4)
    for step in range(10):
        batch = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(step))
        draws = b.draw(2)
        assert torch.equal(a.query(batch), b.apply(batch, draws))
    with pytest.raises(ValueError, match="2 decisions for 3 images"):
        b.apply(torch.rand(3, 3, 4, 4), b.draw(2))


def test_channels_last_batches_come_back_channels_last_in_their_dtype():
    pool = ImagePool(2, seed=0)
    for _ in range(6):
        batch = torch.rand(2, 3, 8, 8).to(torch.bfloat16)
        out = pool.query(batch.contiguous(memory_format=torch.channels_last))
        assert out.dtype == torch.bfloat16
        assert out.is_contiguous(memory_format=torch.channels_last)


def test_a_checkpoint_holds_the_stored_images_alone_and_loads_into_the_same_bank():
    pool = ImagePool(50, seed=0)
    pool.query(torch.rand(3, 3, 64, 64))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    image_bytes = 3 * 64 * 64 * 4
    assert len(buffer.getvalue()) < 4 * image_bytes  # 3 images, not 3 views of a 51-row bank

    bank = pool._bank
    saved = {"images": [torch.full((3, 64, 64), float(k)) for k in range(2)], "count": 2}
    pool.load_state_dict(saved)
    assert pool._bank is bank and len(pool) == 2  # a CUDA graph holding the bank still sees it
    assert [float(t.mean()) for t in pool.images] == [0.0, 1.0]


def test_a_pool_state_saved_before_the_bank_resumes_as_the_official_pool_goes_on():
    """Checkpoints written before the bank hold the list pool's state: its stored images (any
    layout), their count and the generator's state. Loaded, the pool draws and returns what
    the uninterrupted official pool does."""
    official = OfficialPool(4, torch.Generator().manual_seed(8))
    for step in range(5):
        official.query(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(step)))
    old_state = {  # the old ImagePool.state_dict(), as torch.load(weights_only=True) reads it
        "images": [
            t[None].contiguous(memory_format=torch.channels_last)[0] for t in official.images
        ],
        "count": len(official.images),
        "rng": official.generator.get_state(),
    }
    buffer = io.BytesIO()
    torch.save(old_state, buffer)
    buffer.seek(0)
    pool = ImagePool(4, seed=123)
    pool.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(5, 15):
        batch = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(step))
        _same_as_official(pool, official, batch)
