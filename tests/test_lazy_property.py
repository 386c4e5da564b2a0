"""The lock-free cached property of run records: computed once per instance, on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.results.lazy import cached_property


@dataclass(frozen=True)
class Tally:
    values: tuple[int, ...]
    calls: list[int] = field(default_factory=list, compare=False)

    @cached_property
    def total(self) -> int:
        """The sum of the values."""
        self.calls.append(1)
        return sum(self.values)


def test_a_value_is_computed_once_per_instance_on_a_frozen_dataclass():
    """The second read is the stored value; the function ran once; the class is frozen."""
    tally = Tally((1, 2, 3))
    assert tally.calls == []
    assert tally.total == 6
    assert tally.total == 6
    assert tally.calls == [1]


def test_each_instance_keeps_its_own_value():
    """Two instances do not share a computed value, and equality ignores it."""
    a, b = Tally((1, 2)), Tally((10,))
    assert (a.total, b.total) == (3, 10)
    assert Tally((1, 2)) == a


def test_the_class_attribute_is_the_descriptor_with_its_doc():
    """Read on the class it is the property itself, keeping the function's docstring."""
    assert isinstance(Tally.total, cached_property)
    assert Tally.total.__doc__ == "The sum of the values."
