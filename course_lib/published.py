"""Published training configurations (peak learning rate, β₂, weight decay, warmup, schedule, Muon's lr),
each with the paper table or repository file it comes from. Notebook 10 prints them, and checks the lecture
notes' peak learning rates against them.

The rows are data, kept in ``published_configs.json`` beside this module (shipped with the package);
``load_published_configs`` reads and validates that file once, at import, into ``PUBLISHED_CONFIGS`` and
``PUBLISHED_TEXT_KO`` (the Korean text of every warmup, schedule and Muon-lr value).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from .i18n import tr

DATA_FILE = "published_configs.json"
TEXT_FIELDS = ("warmup", "schedule", "muon_lr")  # shown in the notebook's language
_NUMBER_FIELDS = ("params", "peak_lr", "beta2", "weight_decay")


@dataclass(frozen=True)
class PublishedConfig:
    """One training configuration as its source reports it. ``None`` means the cited place does not
    give the value (it is left empty rather than guessed)."""

    model: str
    params: float  # total parameters
    peak_lr: float | None  # AdamW's peak learning rate
    beta2: float | None
    weight_decay: float | None
    warmup: str | None
    schedule: str | None
    muon_lr: str | None  # "n/a" for runs without Muon
    source: str  # what a reader can open: paper (arXiv id, table/section) or repository file

    def shown(self, field: str) -> str | None:
        """A text field (``warmup``, ``schedule``, ``muon_lr``) in the notebook's language; sources stay as cited."""
        value = getattr(self, field)
        return None if value is None else tr(value, PUBLISHED_TEXT_KO.get(value, value))

    def __post_init__(self):
        if self.params <= 0:
            raise ValueError(f"{self.model}: params must be > 0, got {self.params}")
        if self.peak_lr is not None and not 0 < self.peak_lr < 1:
            raise ValueError(f"{self.model}: peak_lr must be in (0, 1), got {self.peak_lr}")
        if self.beta2 is not None and not 0 < self.beta2 < 1:
            raise ValueError(f"{self.model}: beta2 must be in (0, 1), got {self.beta2}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"{self.model}: weight_decay must be ≥ 0, got {self.weight_decay}")
        if "arXiv:" not in self.source and "github.com/" not in self.source:
            raise ValueError(f"{self.model}: the source must name an arXiv id or a github.com repository, "
                             f"got {self.source!r}")


def _row(where: str, raw) -> PublishedConfig:
    """One JSON object as a ``PublishedConfig``: exactly the dataclass's fields, each of the right type."""
    names = [f.name for f in fields(PublishedConfig)]
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object with the keys {', '.join(names)}, got {type(raw).__name__}")
    missing, unknown = [n for n in names if n not in raw], sorted(set(raw) - set(names))
    if missing or unknown:
        raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}; the keys are {', '.join(names)}")
    for name in names:
        value, required = raw[name], name in ("model", "params", "source")
        if value is None and not required:
            continue
        if name in _NUMBER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: {name} must be a finite number{'' if required else ' or null'}, "
                                 f"got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {name} must be a non-empty string{'' if required else ' or null'}, "
                             f"got {value!r}")
    values = {n: float(raw[n]) if n in _NUMBER_FIELDS and raw[n] is not None else raw[n] for n in names}
    try:
        return PublishedConfig(**values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def load_published_configs(path=None) -> tuple[tuple[PublishedConfig, ...], dict[str, str]]:
    """Read and check ``published_configs.json`` (or ``path``): returns (configurations in file order,
    Korean text of each text value). Raises ValueError naming the file and the row for a malformed row,
    a repeated model name, a text value without Korean text, or Korean text no row uses."""
    source = Path(path) if path is not None else resources.files(__package__).joinpath(DATA_FILE)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{source} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or not {"configs", "text_ko"} <= set(data):
        raise ValueError(f"{source}: expected an object with the keys 'configs' (a list) and 'text_ko' (an object)")
    rows, text_ko = data["configs"], data["text_ko"]
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{source}: 'configs' must be a non-empty list of configurations")
    if not isinstance(text_ko, dict) or not all(isinstance(v, str) for v in text_ko.values()):
        raise ValueError(f"{source}: 'text_ko' must map each English text to its Korean text")
    configs = tuple(_row(f"{source}, configs[{i}]", raw) for i, raw in enumerate(rows))
    seen = set()
    for config in configs:
        if config.model in seen:
            raise ValueError(f"{source}: the model {config.model!r} appears twice")
        seen.add(config.model)
    texts = {getattr(c, f) for c in configs for f in TEXT_FIELDS} - {None}
    if texts - set(text_ko):
        raise ValueError(f"{source}: no Korean text in 'text_ko' for {sorted(texts - set(text_ko))}")
    if set(text_ko) - texts:
        raise ValueError(f"{source}: 'text_ko' has Korean text for values no configuration uses: "
                         f"{sorted(set(text_ko) - texts)}")
    return configs, dict(text_ko)


PUBLISHED_CONFIGS, PUBLISHED_TEXT_KO = load_published_configs()


def published_configs(max_params: float | None = None) -> list[PublishedConfig]:
    """``PUBLISHED_CONFIGS`` sorted by size, optionally only models up to ``max_params`` parameters."""
    if max_params is not None and max_params <= 0:
        raise ValueError(f"max_params must be > 0 or None, got {max_params}")
    rows = sorted(PUBLISHED_CONFIGS, key=lambda c: c.params)
    return [c for c in rows if max_params is None or c.params <= max_params]


def published_peak_lr(model: str) -> float:
    """The published peak AdamW learning rate of one row of ``PUBLISHED_CONFIGS``, by its model name."""
    for config in PUBLISHED_CONFIGS:
        if config.model == model:
            if config.peak_lr is None:
                raise ValueError(f"{model}: the cited source gives no single peak learning rate")
            return config.peak_lr
    raise ValueError(f"no published configuration named {model!r}; known: "
                     f"{', '.join(c.model for c in PUBLISHED_CONFIGS)}")
