"""Drug storage profiles: the shipped catalog and validation on load (DESIGN.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from monitor.evaluation import evaluate
from monitor.profiles import DrugProfile, ProfileError, catalog, load_profile, parse_profile

STORAGE_CLASSES = {
    "refrigerated-2-8": (2.0, 8.0),
    "controlled-room-temperature": (20.0, 25.0),
    "freezer": (-25.0, -10.0),
    "ultra-cold": (-80.0, -60.0),
    "cryogenic": (-196.0, -150.0),
}
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _readings(
    temps: list[float], every_min: int = 10, stages: list[str] | None = None
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"ts": [T0 + timedelta(minutes=every_min * i) for i in range(len(temps))], "temp_c": temps}
    )
    if stages is not None:
        frame["stage"] = stages
    return frame


# -- the shipped catalog ---------------------------------------------------------------------


def test_catalog_has_the_storage_classes_and_at_least_ten_products() -> None:
    profiles = catalog()
    for class_id, (low, high) in STORAGE_CLASSES.items():
        assert (profiles[class_id].storage.min_c, profiles[class_id].storage.max_c) == (low, high)
    products = set(profiles) - set(STORAGE_CLASSES)
    assert len(products) >= 10, sorted(products)


@pytest.mark.parametrize("profile_id", sorted(catalog()))
def test_every_shipped_profile_loads_names_its_source_and_round_trips(profile_id: str) -> None:
    profile = load_profile(profile_id)
    assert profile.id == profile_id and len(profile.source.split()) >= 10
    # monitor.service stores model_dump(mode="json") and re-reads it with model_validate.
    stored = profile.model_dump(mode="json")
    again = DrugProfile.model_validate(stored)
    assert again == profile and again.content_hash() == profile.content_hash()


def test_catalog_files_are_named_after_their_ids() -> None:
    names = {
        Path(entry.name).stem
        for entry in resources.files("monitor.catalog").iterdir()
        if entry.name.endswith(".yaml")
    }
    assert names == set(catalog())


def test_class_profiles_say_their_numbers_are_class_defaults() -> None:
    for class_id in STORAGE_CLASSES:
        assert "class default" in catalog()[class_id].source, class_id


def test_the_demo_profiles_keep_their_range_and_rules() -> None:
    for profile_id in ("adalimumab-pen", "refrigerated-2-8"):
        profile = catalog()[profile_id]
        assert (profile.storage.min_c, profile.storage.max_c) == (2.0, 8.0)
        rules = {r.id: (r.direction, r.threshold_c, r.mode, r.for_min, r.severity.value)
                 for r in profile.rules}  # fmt: skip
        assert rules["high-30m"] == ("above", 8.0, "single", 30, "high")
        assert rules["freeze"] == ("below", 0.0, "single", 0, "critical")


@pytest.mark.parametrize("profile_id", sorted(catalog()))
def test_two_days_mid_range_are_accepted_and_a_day_above_is_not(profile_id: str) -> None:
    profile = catalog()[profile_id]
    middle = (profile.storage.min_c + profile.storage.max_c) / 2
    clean = evaluate(profile, _readings([middle] * 289))  # 48 h at 10-minute readings
    assert clean.verdict == "accept", clean
    warm = evaluate(profile, _readings([middle] * 10 + [profile.storage.max_c + 1] * 144))
    assert warm.verdict != "accept"


@pytest.mark.parametrize(
    "profile_id", sorted(p.id for p in catalog().values() if p.freeze_sensitive)
)
def test_freeze_sensitive_products_reject_a_freeze(profile_id: str) -> None:
    result = evaluate(catalog()[profile_id], _readings([5.0, 5.0, -0.4, 5.0]))
    assert result.verdict == "reject" and result.freeze_thaw_cycles == 1


def test_budget_of_a_label_allowance_is_its_time_in_minutes() -> None:
    # Enbrel: up to 25 °C for a single period of up to four weeks = 4 × 7 × 1440 min.
    [band] = catalog()["etanercept-enbrel"].stability_budget
    assert (band.above_c, band.up_to_c, band.budget_min) == (8.0, 25.0, 4 * 7 * 1440)


def test_gene_therapy_thawed_at_the_destination_is_accepted_but_not_refrozen() -> None:
    profile = catalog()["onasemnogene-abeparvovec"]
    # 1 h frozen at origin, 1 day in transit, then a day in the destination fridge.
    stages = ["origin"] * 6 + ["in_transit"] * 144 + ["destination"] * 144
    temps = [-70.0] * 150 + [5.0] * 144
    thawed = evaluate(profile, _readings(temps, stages=stages))
    # Above its -60 °C range at the destination, but the rules are scoped to origin and
    # transit; one thaw is not a cycle; a day uses 1 440 of the 20 160-minute budget.
    assert thawed.alarms == [] and thawed.freeze_thaw_cycles == 0
    assert thawed.budget[0].used_min == pytest.approx(143 * 10)
    assert thawed.verdict == "accept"
    refrozen = evaluate(profile, _readings([*temps, -70.0], stages=[*stages, "destination"]))
    assert refrozen.freeze_thaw_cycles == 1 and refrozen.verdict == "reject"
    in_transit = evaluate(profile, _readings(temps))  # no stage column: all in transit
    assert {a.rule for a in in_transit.alarms} == {
        "warm-in-transit",
        "thaw-in-transit",
    } and in_transit.verdict == "review"


# -- validation on load ----------------------------------------------------------------------

VALID = """
id: p
name: P
source: s
storage: {min_c: 2, max_c: 8}
rules:
  - {id: freeze, below_c: 0, mode: single, for_min: 0, severity: critical}
stability_budget:
  - {above_c: 8, up_to_c: 25, budget_min: 60}
"""


def _with(**changes: object) -> str:
    data = yaml.safe_load(VALID)
    data.update(changes)
    return yaml.safe_dump(data)


def test_the_base_case_is_valid_and_defaults_are_documented_values() -> None:
    profile = parse_profile(VALID, "p.yaml")
    assert profile.ignore_period_min == 0 and profile.max_gap_min == 30
    assert profile.rules[0].stages == ("origin", "in_transit", "destination")
    assert (profile.may_return_to_storage, profile.freeze_sensitive) == (False, False)
    assert profile.freeze_thaw_max is None and profile.expiry_reduction is None


INVALID = [
    (_with(stability_budget=[{"above_c": 8, "up_to_c": 25, "budget_min": 1},
                             {"above_c": 20, "up_to_c": 30, "budget_min": 1}]),
     r"stability_budget: bands \(8, 25\] and \(20, 30\] overlap"),
    (_with(stability_budget=[{"above_c": 25, "up_to_c": 8, "budget_min": 1}]),
     r"stability_budget\.0: band is inverted or empty: up_to_c 8\.0 must be above above_c 25"),
    (_with(stability_budget=[{"above_c": 5, "up_to_c": 25, "budget_min": 1}]),
     r"stability_budget\.0: band \(5, 25\] overlaps the storage range 2\.\.8"),
    (_with(stability_budget=[{"above_c": -10, "up_to_c": 0, "budget_min": 60}]),
     r"stability_budget\.0: band \(-10, 0\] lies below the storage range 2\.\.8; a budget "
     r"is an allowance for heat"),
    (_with(stability_budget=[{"above_c": 8, "up_to_c": 25, "budget_min": -1}]),
     r"stability_budget\.0\.budget_min: Input should be greater than or equal to 0"),
    (_with(colour="blue"), r"colour: unknown field"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0,
                   "severity": "high", "stage": ["origin"]}]),
     r"rules\.0\.stage: unknown field"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0,
                   "severity": "high", "stages": []}]),
     r"rules\.0\.stages: .*at least one stage"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0,
                   "severity": "high", "stages": ["origin", "origin"]}]),
     r"rules\.0\.stages: .*must not repeat"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0,
                   "severity": "high", "stages": ["customs"]}]),
     r"rules\.0\.stages\.0: Input should be 'origin', 'in_transit' or 'destination'"),
    (_with(rules=[{"id": "r", "mode": "single", "for_min": 1, "severity": "high"}]),
     r"rules\.0: a rule needs exactly one of above_c or below_c"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0, "severity": "x"}]),
     r"rules\.0\.severity: Input should be 'notification', 'low'"),
    (_with(rules=[{"id": "r", "below_c": 0, "mode": "single", "for_min": 0, "severity": "high"},
                  {"id": "r", "above_c": 9, "mode": "single", "for_min": 0, "severity": "high"}]),
     r"rules: rule ids must be unique; repeated: r"),
    (_with(freeze_sensitive=True, rules=[]),
     r"freeze_sensitive: needs a critical rule with below_c at or above -0\.5"),
    (_with(freeze_sensitive=True, rules=[{"id": "f", "below_c": -2, "mode": "single",
                                           "for_min": 0, "severity": "critical"}]),
     r"freeze_sensitive: needs a critical rule"),
    (_with(freeze_sensitive=True, storage={"min_c": -5, "max_c": 8},
           stability_budget=[]), r"freeze_sensitive: a freeze-sensitive product cannot be stored"),
    (_with(ignore_period_min=-5), r"ignore_period_min: Input should be greater than or equal to 0"),
    (_with(freeze_thaw_max=-1), r"freeze_thaw_max: Input should be greater than or equal to 0"),
    (_with(freeze_thaw_max=1.5), r"freeze_thaw_max: Input should be a valid integer"),
    (_with(expiry_reduction={"use_within": 6, "unit": "weeks"}),
     r"expiry_reduction\.unit: Input should be 'hours', 'days' or 'months'"),
    (_with(expiry_reduction={"use_within": 0, "unit": "days"}),
     r"expiry_reduction\.use_within: Input should be greater than 0"),
    (_with(storage={"min_c": 9, "max_c": 8}, stability_budget=[]),
     r"storage: min_c 9\.0 is above max_c 8\.0"),
    (_with(id="Bad Id"), r"id: String should match pattern"),
    ("- a list", r"a profile must be a YAML mapping"),
    ("id: [unclosed", r"not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_profiles_name_file_field_and_reason(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=r"^bad\.yaml: .*" + message):
        parse_profile(text, "bad.yaml")


def test_adjacent_bands_are_not_overlapping() -> None:
    bands = [
        {"above_c": 8, "up_to_c": 15, "budget_min": 1},
        {"above_c": 15, "up_to_c": 25, "budget_min": 1},
    ]
    assert len(parse_profile(_with(stability_budget=bands), "p.yaml").stability_budget) == 2


def test_load_profile_by_path_and_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(_with(id="local-product"), encoding="utf-8")
    assert load_profile(str(path)).id == "local-product"
    with pytest.raises(ProfileError, match=r"missing\.yaml: cannot read \(No such file"):
        load_profile(str(tmp_path / "missing.yaml"))
    with pytest.raises(ProfileError, match="no profile 'nope'; shipped profiles: .*adalimumab-pen"):
        load_profile("nope")


def test_every_catalog_budget_says_how_heat_beyond_its_top_band_is_handled() -> None:
    """Issue 13: each profile with a budget names the rule for heat beyond its top band, or
    says it relies on unstudied exposure, in a comment right above its budget."""
    for profile_id, profile in catalog().items():
        if not profile.stability_budget:
            continue
        text = (resources.files("monitor.catalog") / f"{profile_id}.yaml").read_text("utf-8")
        top = max(band.up_to_c for band in profile.stability_budget)
        head, _, _ = text.partition("\nstability_budget:")
        comment = " ".join(
            line.removeprefix("#").strip()
            for line in head.splitlines()[-4:]
            if line.startswith("#")
        )
        assert comment.startswith(f"Heat beyond the top band ({top:g} °C):"), profile_id
        beyond = [
            rule.id
            for rule in profile.rules
            if rule.direction == "above" and rule.threshold_c >= top
        ]
        if beyond:
            assert all(f"rule {rule_id} (" in comment for rule_id in beyond), profile_id
        else:
            assert "relies on unstudied exposure" in comment, profile_id
