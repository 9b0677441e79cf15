"""Package temperature: a first-order lag toward its surroundings, buffered by refrigerant.

While the refrigerant lasts, the payload is pulled toward the refrigerant's temperature
(the melting point of a phase-change material, sublimating dry ice, LN₂ vapour, or an
active container's set point), and only a small share of the ambient difference leaks
through the insulation. The refrigerant is used up at a rate proportional to the heat
leaking in — ``|ambient − refrigerant|`` relative to the qualification ambient it was
rated at — so a hot tarmac or a warm customs shed shortens the hold time. Once it is
spent, the payload drifts to ambient with the insulation's time constant. Each step is the
exact solution for constant surroundings: ``T' = env + (T − env)·exp(−dt/τ)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

# A door or lid left open: the probe sees outside air within minutes.
EXPOSED_TAU_MIN = 12.0


@dataclass(frozen=True, slots=True)
class Packaging:
    id: str
    description: str
    kind: Literal["passive", "active"]
    storage_min_c: float
    storage_max_c: float
    refrigerant_c: float  # PCM melting point, dry ice, LN₂ vapour, or active set point
    hold_h: float  # refrigerant (or battery) life at the rating ambient
    tau_min: float  # insulation: payload toward ambient once the refrigerant is spent
    coupling_tau_min: float  # payload toward the refrigerant while it lasts
    leak: float  # share of (ambient − refrigerant) that still reaches the payload
    start_c: float
    noise_c: float  # logger probe noise (1 sigma)
    rating_ambient_c: float = 30.0  # ISTA 7D-style summer qualification profile


PACKAGING: dict[str, Packaging] = {
    p.id: p
    for p in (
        Packaging(
            "passive-2-8",
            "passive shipper, gel packs / PCM conditioned at 5 °C (2-8 °C)",
            "passive", 2.0, 8.0, refrigerant_c=5.0, hold_h=96, tau_min=180,
            coupling_tau_min=45, leak=0.03, start_c=5.0, noise_c=0.05,
        ),
        Packaging(
            "active-2-8",
            "active container, compressor and heater at a 5 °C set point (2-8 °C)",
            "active", 2.0, 8.0, refrigerant_c=5.0, hold_h=120, tau_min=600,
            coupling_tau_min=20, leak=0.005, start_c=5.0, noise_c=0.1,
        ),
        Packaging(
            "passive-15-25",
            "passive shipper, PCM at 22 °C (controlled room temperature 15-25 °C)",
            "passive", 15.0, 25.0, refrigerant_c=22.0, hold_h=96, tau_min=240,
            coupling_tau_min=60, leak=0.04, start_c=22.0, noise_c=0.08,
        ),
        Packaging(
            "frozen-gel",
            "passive shipper, frozen packs at -20 °C (frozen -25 to -15 °C)",
            "passive", -25.0, -15.0, refrigerant_c=-20.0, hold_h=72, tau_min=150,
            coupling_tau_min=45, leak=0.03, start_c=-20.0, noise_c=0.1,
        ),
        # Dry ice sublimes at -78.5 °C at 1 atm; the payload sits a few degrees above it.
        Packaging(
            "dry-ice",
            "dry ice shipper, -78.5 °C sublimation (ultra-cold, about -78 °C)",
            "passive", -80.0, -60.0, refrigerant_c=-78.5, hold_h=96, tau_min=120,
            coupling_tau_min=60, leak=0.02, start_c=-75.0, noise_c=0.2,
        ),
        # LN₂ boils at -196 °C; a vapour-phase dry shipper holds below -150 °C for ~10 days.
        Packaging(
            "ln2-dry-shipper",
            "LN2 vapour-phase dry shipper (cryogenic, below -150 °C)",
            "passive", -196.0, -150.0, refrigerant_c=-190.0, hold_h=240, tau_min=300,
            coupling_tau_min=90, leak=0.01, start_c=-185.0, noise_c=0.3,
        ),
    )
}  # fmt: skip


@dataclass(slots=True)
class PackageState:
    temp_c: float
    refrigerant_left: float = 1.0  # 1 = freshly conditioned, 0 = spent


def step(
    state: PackageState,
    pack: Packaging,
    ambient_c: float,
    dt_min: float,
    *,
    refrigerant_c: float | None = None,
    exposed: bool = False,
) -> None:
    """Advance ``state`` by ``dt_min`` in constant surroundings.

    ``refrigerant_c`` overrides the refrigerant's temperature (over-conditioned packs);
    ``exposed`` means the payload sees ambient air directly (door open).
    """
    if dt_min <= 0:
        return
    held_at = pack.refrigerant_c if refrigerant_c is None else refrigerant_c
    if exposed:
        env, tau = ambient_c, EXPOSED_TAU_MIN
    elif state.refrigerant_left > 0:
        env = held_at + pack.leak * (ambient_c - held_at)
        tau = pack.coupling_tau_min
    else:
        env, tau = ambient_c, pack.tau_min
    state.temp_c = env + (state.temp_c - env) * math.exp(-dt_min / tau)
    if state.refrigerant_left > 0:
        state.refrigerant_left = max(0.0, state.refrigerant_left - usage(pack, ambient_c, dt_min))


def usage(pack: Packaging, ambient_c: float, dt_min: float) -> float:
    """Share of the refrigerant (or an active unit's battery) used in ``dt_min``."""
    life_min = pack.hold_h * 60.0
    if pack.kind == "active":
        return dt_min / life_min
    rated = abs(pack.rating_ambient_c - pack.refrigerant_c)
    return dt_min / life_min * abs(ambient_c - pack.refrigerant_c) / rated


def customised(pack: Packaging, **overrides: float | None) -> Packaging:
    """The packaging with the scenario's overrides (``None`` keeps the default)."""
    changes = {name: value for name, value in overrides.items() if value is not None}
    return replace(pack, **changes)  # type: ignore[arg-type]
