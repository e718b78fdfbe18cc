import pytest

from i2i.registry import RegistrationError, Registry, UnknownComponentError


def make_registry():
    reg = Registry("discriminator")
    reg.add("patch70", object, provider="plugin 'a'", aliases=("patch",), summary="70x70")
    reg.add("patch16", object, provider="plugin 'a'", summary="16x16")
    reg.add("pixel", object, provider="plugin 'a'", summary="1x1")
    return reg


def test_lookup_by_name_and_alias():
    reg = make_registry()
    assert reg.get("patch").name == "patch70"
    assert reg.get("patch70").summary == "70x70"
    assert "patch" in reg and "nope" not in reg


def test_unknown_name_suggests_closest_and_lists_choices():
    with pytest.raises(UnknownComponentError) as info:
        make_registry().get("patch71")
    msg = str(info.value)
    assert "Unknown discriminator 'patch71'" in msg
    assert "Did you mean 'patch70'" in msg
    assert "patch16" in msg and "pixel" in msg
    assert "i2i list discriminators" in msg
    assert isinstance(info.value, LookupError)


def test_duplicate_names_both_providers():
    reg = make_registry()
    with pytest.raises(RegistrationError, match="plugin 'a'.*plugin 'b'"):
        reg.add("patch", object, provider="plugin 'b'")


@pytest.mark.parametrize("bad", ["Patch70", "70patch", "patch-70", "", "pätch"])
def test_bad_names_refused(bad):
    with pytest.raises(RegistrationError, match="must match"):
        Registry("generator").add(bad, object, provider="plugin 'x'")


def test_wildcards_match_names_and_aliases():
    reg = make_registry()
    assert reg.names("patch*") == ["patch16", "patch70"]
    assert reg.names("pix?l") == ["pixel"]
    assert reg.names("patch") == ["patch70"]


def test_summary_defaults_to_first_docstring_line():
    def factory(in_channels, *, width=4):
        """A tiny thing.

        More text."""

    reg = Registry("generator")
    reg.add("tiny", factory, provider="p")
    entry = reg.get("tiny")
    assert entry.summary == "A tiny thing."
    assert entry.options() == {"in_channels": None, "width": 4}


def test_summary_comes_from_the_object_before_its_docstring():
    from i2i import Task

    reg = Registry("tasks")
    task = Task(summary="Noisy to clean", in_channels=3, out_channels=3, layout="single")
    reg.add("denoise", task, provider="p")

    def factory():
        """First docstring line.

        More."""

    reg.add("f", factory, provider="p")
    assert reg.get("denoise").summary == "Noisy to clean"
    assert reg.get("f").summary == "First docstring line."
