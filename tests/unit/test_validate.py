"""The one validator for numbers: task flags and config values get the same rules and one-line errors."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from droplet_deploy.core import validate
from droplet_deploy.core.config import RANGES, load
from droplet_deploy.core.config_keys import DEFAULTS, FIELDS
from droplet_deploy.core.errors import ConfigError, UsageError

RULES = [validate.TIMEOUT, validate.INTERVAL, validate.DRAIN, validate.PORT, validate.KEEP, validate.MEGABYTES,
         validate.LINES, validate.RELEASES]


@pytest.mark.parametrize(("text", "rule", "expected"), [
    ("30", validate.TIMEOUT, 30.0),
    (" 2.5 ", validate.TIMEOUT, 2.5),
    ("86400", validate.TIMEOUT, 86400.0),
    ("0", validate.LINES, 0),
    ("7", validate.KEEP, 7),
    (8000, validate.PORT, 8000),
    (3.0, validate.DRAIN, 3),
])
def test_good_values_come_back_as_numbers(text, rule, expected):
    value = validate.flag("x", text, rule)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("text", "rule", "words"), [
    ("abc", validate.TIMEOUT, "is not a number"),
    ("", validate.TIMEOUT, "is not a number"),
    ("nan", validate.TIMEOUT, "is not a finite number"),
    ("inf", validate.TIMEOUT, "is not a finite number"),
    ("-inf", validate.INTERVAL, "is not a finite number"),
    ("1e999", validate.TIMEOUT, "is not a finite number"),
    ("-5", validate.TIMEOUT, "must be greater than 0"),
    ("0", validate.TIMEOUT, "must be greater than 0"),
    ("-0.0", validate.INTERVAL, "must be greater than 0"),
    ("86401", validate.TIMEOUT, "must be at most 86400"),
    ("1.5", validate.KEEP, "is not a whole number"),
    ("0", validate.KEEP, "must be at least 1"),
    ("-1", validate.LINES, "must be at least 0"),
    ("1001", validate.RELEASES, "must be at most 1000"),
    ("9" * 5000, validate.LINES, "is not a whole number"),
    (True, validate.PORT, "is not a whole number"),
])
def test_bad_flags_are_one_usage_error_naming_the_flag_and_the_fix(text, rule, words):
    with pytest.raises(UsageError) as info:
        validate.flag("timeout", text, rule)
    message = str(info.value)
    assert message.startswith("--timeout ") and words in message
    assert "e.g. --timeout " in message and "\n" not in message


@given(value=st.one_of(st.text(), st.floats(), st.integers(), st.booleans(), st.none()),
       rule=st.sampled_from(RULES))
def test_any_input_is_a_number_in_range_or_a_usage_error(value, rule):
    try:
        number = validate.flag("timeout", value, rule)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert not isinstance(number, bool)
    assert math.isfinite(number)
    assert rule.low <= number <= rule.high
    assert not (rule.above_low and number == rule.low)
    assert isinstance(number, int) if rule.whole else isinstance(number, float)


@given(text=st.from_regex(r"\A-?[0-9]{1,6}(\.[0-9]{1,3})?\Z"))
def test_a_number_in_range_is_never_refused(text):
    number = float(text)
    if 0 < number <= validate.DAY:
        assert validate.flag("timeout", text, validate.TIMEOUT) == number


def test_every_numeric_setting_has_a_range():
    numeric = {key for key, (kind, _) in FIELDS.items() if kind in ("number", "integer")}
    assert numeric == set(RANGES)


def config(**overrides):
    return {**DEFAULTS, "app_name": "shop", **overrides}


@pytest.mark.parametrize("key", sorted(RANGES))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 10**12])
def test_every_numeric_setting_refuses_nan_inf_negative_and_absurd(root, key, value):
    if FIELDS[key][0] == "integer" and isinstance(value, float):
        value = int(1e12)
    section = {**DEFAULTS["environments"]["test"], key: value}
    with pytest.raises(ConfigError) as info:
        load(config(environments={"test": section}), "test", root=root)
    assert info.value.key == f"deploy.environments.test.{key}"
    assert "e.g." in str(info.value)


def test_a_setting_in_an_environment_section_is_named_with_its_section(root):
    raw = config(environments={"test": {"health_timeout": float("nan")}})
    with pytest.raises(ConfigError) as info:
        load(raw, "test", root=root)
    assert str(info.value).startswith("config error: deploy.environments.test.health_timeout: nan is not a finite")


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("key", sorted([*FIELDS, "default_env", "environments"]))
@settings(max_examples=50)
@given(value=VALUES, in_section=st.booleans())
def test_any_value_of_any_key_loads_or_is_one_config_error(tmp_path_factory, key, value, in_section):
    root = tmp_path_factory.getbasetemp() / "any-value"
    root.mkdir(exist_ok=True)
    for name in ("Dockerfile", "docker-compose.test.yml", "docker-compose.beta.yml"):
        (root / name).touch()
    if in_section and key not in ("default_env", "environments"):
        raw = config(environments={"test": {**DEFAULTS["environments"]["test"], key: value}})
    else:
        raw = config(**{key: value})
    try:
        settings = load(raw, root=root)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("config error: ")
        return
    for name, rule in RANGES.items():
        number = getattr(settings, name)
        assert math.isfinite(number) and rule.low <= number <= rule.high
