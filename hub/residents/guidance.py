"""What a resident should do, per signal: a headline, steps, and which shelter types apply.

Defaults follow the civil-protection guidance summarised in shared/reference/warning.md (DSNS and comparable
bodies). A city reviews its own texts, so every part can be overridden in hub.toml:

    [residents.guidance]
    chemical_agent = "heavier"        # heavier than air (chlorine, most gases): upper floors, never underground
                                      # "lighter" (ammonia): lower floors; underground shelters apply again
    [residents.guidance.signals.air-raid]
    headline = { uk = "...", en = "..." }
    steps = { uk = ["...", "..."], en = ["...", "..."] }
    shelter_types = ["bomb_shelter", "metro", "basement", "parking"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.models import Signal

Lang = Literal["uk", "en"]
# Shelter types a shelters file may use (GeoJSON property "type"); the first four are below ground.
UNDERGROUND = frozenset({"bomb_shelter", "metro", "basement", "parking"})
SHELTER_TYPES = (*sorted(UNDERGROUND), "building")
ALL_TYPES = frozenset(SHELTER_TYPES)


@dataclass(frozen=True)
class Guidance:
    headline: Mapping[str, str]
    steps: Mapping[str, tuple[str, ...]]
    shelter_types: frozenset[str] = frozenset()  # empty: no shelter list for this signal
    shelter_note: Mapping[str, str] = field(default_factory=dict)  # why some shelters are not listed


def _g(uk: str, en: str, steps_uk: list[str], steps_en: list[str], types: frozenset[str] = frozenset(),
       note_uk: str = "", note_en: str = "") -> Guidance:
    return Guidance({"uk": uk, "en": en}, {"uk": tuple(steps_uk), "en": tuple(steps_en)}, types,
                    {"uk": note_uk, "en": note_en} if note_uk else {})


DEFAULTS: dict[str, Guidance] = {
    Signal.AIR_RAID.value: _g(
        "Повітряна тривога — негайно йдіть в укриття", "Air raid — go to a shelter now",
        ["Негайно йдіть до найближчого укриття.",
         "Якщо укриття немає — правило двох стін: коридор або ванна, далеко від вікон.",
         "Залишайтеся в укритті до відбою тривоги."],
        ["Go to the nearest shelter at once.",
         "If there is none, use the two-walls rule: an inner corridor or bathroom, away from windows.",
         "Stay until the all-clear."],
        UNDERGROUND | {"building"}),
    "chemical-heavier": _g(
        "Хімічна небезпека — залишайтеся в приміщенні", "Chemical hazard — stay indoors",
        ["Залишайтеся в приміщенні або зайдіть у найближчу будівлю.",
         "Зачиніть вікна, двері та вентиляцію, заклейте щілини.",
         "Дихайте через вологу тканину.",
         "Підніміться на верхні поверхи: газ важчий за повітря. Не спускайтеся в підвали, метро чи підземні укриття.",
         "Стежте за подальшими повідомленнями."],
        ["Stay indoors, or go into the nearest building.",
         "Shut windows, doors and ventilation, and seal the gaps.",
         "Breathe through a damp cloth.",
         "Go to upper floors: the gas is heavier than air. Do not go to basements, the metro or underground shelters.",
         "Follow further announcements."],
        frozenset({"building"}),
        "Підземні укриття не показано: під час хімічної небезпеки туди не можна.",
        "Underground shelters are not listed: do not go below ground during a chemical hazard."),
    "chemical-lighter": _g(
        "Хімічна небезпека — залишайтеся в приміщенні", "Chemical hazard — stay indoors",
        ["Залишайтеся в приміщенні або зайдіть у найближчу будівлю.",
         "Зачиніть вікна, двері та вентиляцію, заклейте щілини.",
         "Дихайте через вологу тканину.",
         "Спустіться на нижні поверхи: газ легший за повітря.",
         "Стежте за подальшими повідомленнями."],
        ["Stay indoors, or go into the nearest building.",
         "Shut windows, doors and ventilation, and seal the gaps.",
         "Breathe through a damp cloth.",
         "Go to lower floors: the gas is lighter than air.",
         "Follow further announcements."],
        UNDERGROUND | {"building"}),
    Signal.RADIATION.value: _g(
        "Радіаційна небезпека — негайно в приміщення", "Radiation hazard — go indoors now",
        ["Негайно зайдіть у приміщення: найкраще підвал або центр міцної будівлі.",
         "Зачиніть вікна, двері та вентиляцію.",
         "Зайшовши, зніміть верхній одяг.",
         "Приймайте йодид калію лише за вказівкою влади."],
        ["Go indoors at once, preferably a basement or the centre of a solid building.",
         "Shut windows, doors and ventilation.",
         "Take off outer clothing when you come in.",
         "Take potassium iodide only when the authorities say so."],
        frozenset({"bomb_shelter", "basement"}),
        "Показано лише підвали та сховища.", "Only basements and shelters are listed."),
    Signal.ALL_CLEAR.value: _g(
        "Відбій тривоги — що робити зараз", "All clear — what to do now",
        ["Спокійно виходьте з укриття.",
         "Остерігайтеся уламків і боєприпасів, що не вибухнули. Не торкайтеся їх — повідомте за номером 101.",
         "Стежте за офіційними каналами."],
        ["Leave the shelter calmly.",
         "Watch for debris and unexploded ordnance. Do not touch fallen fragments: report them (call 101).",
         "Follow official channels for further instructions."]),
    Signal.TEST.value: _g(
        "Перевірка сирен — небезпеки немає", "Siren test — no danger",
        ["Нічого робити не потрібно."], ["You do not need to do anything."]),
    "exercise": _g(
        "Навчання — перевіряють сирени, небезпеки немає", "Exercise — sirens are being tested, no danger",
        ["Сирени можуть звучати, але небезпеки немає.", "Візьміть участь, якщо вас про це просять."],
        ["Sirens may sound, but there is no danger.", "Take part if asked."]),
    "idle": _g("Немає тривоги", "No alert", [], [], UNDERGROUND | {"building"}),
}


class SignalGuidance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headline: dict[Lang, str] | None = None
    steps: dict[Lang, list[str]] | None = None
    shelter_types: list[Literal["bomb_shelter", "metro", "basement", "parking", "building"]] | None = None
    shelter_note: dict[Lang, str] | None = None


class GuidanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chemical_agent: Literal["heavier", "lighter"] = "heavier"
    signals: dict[Literal["air-raid", "chemical", "radiation", "all-clear", "test", "exercise", "idle"],
                  SignalGuidance] = Field(default_factory=dict)


class GuidanceBook:
    """The city's guidance: defaults with the hub.toml overrides applied."""

    def __init__(self, cfg: GuidanceConfig | None = None) -> None:
        cfg = cfg or GuidanceConfig()
        self.chemical_agent = cfg.chemical_agent
        self._book = dict(DEFAULTS)
        self._book[Signal.CHEMICAL.value] = DEFAULTS[f"chemical-{cfg.chemical_agent}"]
        for key, o in cfg.signals.items():
            base = self._book[key]
            self._book[key] = Guidance(
                headline={**base.headline, **(o.headline or {})},
                steps={**base.steps, **{k: tuple(v) for k, v in (o.steps or {}).items()}},
                shelter_types=frozenset(o.shelter_types) if o.shelter_types is not None else base.shelter_types,
                shelter_note={**base.shelter_note, **(o.shelter_note or {})})

    def for_view(self, status: str, signal: str | None) -> Guidance | None:
        """The guidance for what the page shows: an active signal, the all-clear, an exercise notice, idle."""
        if status == "exercise":
            return self._book["exercise"]
        if status == "all_clear":
            return self._book[Signal.ALL_CLEAR.value]
        if status == "active" and signal is not None:
            return self._book.get(signal)
        if status == "idle":
            return self._book["idle"]
        return None
