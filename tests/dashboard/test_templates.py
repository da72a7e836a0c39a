"""The dashboard's Jinja environment looks a dict's items up first (kassa/dashboard/pages.py): it must
answer exactly as Jinja's own lookup does, whatever the key."""

from __future__ import annotations

from typing import Any

import jinja2
from hypothesis import given
from hypothesis import strategies as st

from kassa.dashboard.pages import env

KEYS = st.sampled_from(sorted(dir(dict))) | st.text(max_size=12)


@given(st.dictionaries(KEYS, st.integers() | st.text(max_size=5), max_size=6), KEYS)
def test_dict_lookups_answer_as_jinja_does(values: dict[str, Any], name: str) -> None:
    reference = jinja2.Environment(autoescape=True).getattr(values, name)
    ours = env.getattr(values, name)
    if isinstance(reference, jinja2.Undefined):
        assert isinstance(ours, jinja2.Undefined) and name not in values
    else:
        assert ours == reference


def test_a_key_named_like_a_dict_method_stays_the_method() -> None:
    rendered = env.from_string("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.id }}").render(
        d={"items": "shadowed", "id": "ord_1"}
    )
    assert rendered == "items=shadowed;id=ord_1;ord_1"
