"""Run configuration: pydantic models loaded from YAML, validated before anything opens.

Every error names the file, the key path and what was expected, on one line.
Sections owned by a plug-in (the `crossbar:` section of a twin or a board) are
validated by that plug-in through `validate_section`, with the same messages.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from hil.adaptive import AdaptiveConfig
from hil.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


#: a count or size: positive and small enough for every C integer it ends up in
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]
#: a random seed: what torch and numpy generators take, with room for (seed, epoch) mixing
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: a name that becomes part of a run id and so of a folder name in the workspace
RunName = Annotated[str, AfterValidator(lambda name: _check_name(name))]


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise ValueError("a name holds 1 to 64 letters, digits, '.', '_' or '-', and starts with a letter or digit")
    return name


class Strict(BaseModel):
    """Base of every config model: unknown keys and infinite or NaN numbers are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataConfig(Strict):
    """Which images, from where, and how they become input voltages."""

    dataset: Literal["mnist", "fashion-mnist", "kmnist", "iris", "digits", "xor", "xor1d"] = Field(
        "mnist", description="an IDX image set, or a board-sized task (iris, digits, xor, xor1d; see hil/tasks.py)"
    )
    root: str | None = Field(
        None, description="data root holding mnist/, fashion-mnist/, kmnist/; 'embedded' for the packaged subset"
    )
    train_subset: PositiveInt | None = Field(None, description="use only the first n training images")
    test_subset: PositiveInt | None = Field(None, description="use only the first n test images")
    input_gain: PositiveFloat = Field(480.0, description="volts per unit pixel on the doubled inputs [+x, -x]")
    input_offsets: tuple[float, float] = Field(
        (0.0, 0.0), description="features at which the + and - inputs sit at 0 V: gain [x - a, b - x] (default "
                                "[+x, -x]); unequal a < b let a network without biases bend at fixed points"
    )
    size: PositiveInt | None = Field(None, description="average-pool images to size x size (digits, IDX sets)")
    tile: PositiveInt = Field(1, description="repeat the features this many times (to fill a board's inputs)")
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="held-out share of iris and digits")
    split_seed: int = Field(0, description="seed of the iris/digits train/test split and of the XOR points")
    readout: Literal["one-hot", "binary"] = Field(
        "one-hot", description="one output per class, or two classes on one output node (binary)"
    )
    target_v: PositiveFloat = Field(1.0, description="nudge target of the right class (v_unit)")
    target_off_v: float = Field(0.0, description="nudge target of the other classes (v_unit)")

    @model_validator(mode="after")
    def _task(self) -> DataConfig:
        if self.size is not None:
            if self.dataset in ("iris", "xor", "xor1d"):
                raise ValueError(f"size: {self.dataset} has no images to pool")
            side = 8 if self.dataset == "digits" else 28
            if self.size > side:
                raise ValueError(f"size: {self.size} exceeds the {side} x {side} images of {self.dataset}")
        if self.target_off_v >= self.target_v:
            raise ValueError(f"target_off_v ({self.target_off_v:g}) must lie below target_v ({self.target_v:g})")
        if self.readout == "binary" and self.dataset not in ("xor", "xor1d"):
            raise ValueError(f"readout: binary needs two classes; {self.dataset} has more")
        return self


class NetworkConfig(Strict):
    """Layer sizes and device range; inputs (2 x pixels) and outputs (classes) come from the data."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [1024])
    g_min: NonNegativeFloat = 0.0
    g_max: PositiveFloat | None = Field(None, description="upper conductance bound (S, in g_unit); none if null")
    init_gain: PositiveFloat | list[PositiveFloat] = Field(
        1.0, description="half-Kaiming uniform init: G ~ U(-a, a) clipped to the range, a = gain/sqrt(n_pre)"
    )
    init_hidden_bias: NonNegativeFloat = Field(
        0.0, description="initial hidden bias: + on the >= 0 half, - on the <= 0 half (keeps small nets' diodes on)"
    )
    biases: bool = Field(
        True, description="learned bias currents on the hidden and output nodes; false: none (every bias stays "
                          "0 A), the network of a station without bias sources (memristive cells)"
    )
    g_unit: PositiveFloat = 1.0
    v_unit: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _range(self) -> NetworkConfig:
        if any(n % 2 for n in self.hidden):
            raise ValueError(f"every hidden layer needs an even size (half >= 0, half <= 0), got {self.hidden}")
        if self.g_max is not None and self.g_max <= self.g_min:
            raise ValueError(f"g_max ({self.g_max}) must exceed g_min ({self.g_min})")
        if isinstance(self.init_gain, list) and len(self.init_gain) != len(self.hidden) + 1:
            raise ValueError(f"init_gain needs one value per block ({len(self.hidden) + 1})")
        return self


class TrainConfig(Strict):
    """The EP schedule: what the controller does each batch and each epoch."""

    epochs: PositiveInt = 1
    batch_size: PositiveInt = 4
    beta: PositiveFloat = Field(1.0, description="nudge conductance to the target (S, in g_unit)")
    centered: bool = Field(True, description="nudge at +beta and -beta (centered EP) instead of 0 and +beta")
    eta: PositiveFloat | list[PositiveFloat] = Field(0.006, description="learning rate of the blocks, or one per block")
    eta_bias: PositiveFloat | list[PositiveFloat] | None = Field(None, description="learning rate of the biases")
    momentum: float = Field(
        0.0, ge=0.0, lt=1.0, description="heavy-ball momentum of the EP update (0: plain SGD, the paper's)"
    )
    update: Literal["blas"] = Field(
        "blas", description="the EP update: BLAS, then the clip (kept so that runs stored with it resume; "
        "'fused' was replaced by crossbar.layout: column, which is faster and needs no compiler)"
    )
    lr_decay: float = Field(0.99, gt=0.0, le=1.0, description="learning rates are multiplied by this each epoch")
    n_samples: PositiveInt = Field(1, description="reads averaged per node per phase (N)")
    checkpoint_every: PositiveInt = Field(1000, description="batches between checkpoints (and one per epoch)")
    max_batches: PositiveInt | None = Field(None, description="stop each epoch after this many batches")
    adaptive: AdaptiveConfig | None = Field(
        None, description="choose N (and beta) per batch from the measured update SNR; off when null"
    )

    @field_validator("update", mode="before")
    @classmethod
    def _fused_is_gone(cls, value: Any) -> Any:
        if value == "fused":
            raise ValueError("'fused' was replaced by crossbar.layout: column (faster, needs no compiler)")
        return value


class EvalConfig(Strict):
    batch_size: PositiveInt = 256
    n_samples: PositiveInt | None = Field(None, description="reads per node at test time; default train.n_samples")


class RunConfig(Strict):
    """One training run: the top level of a YAML config file."""

    name: RunName = Field("run", description="letters, digits, '.', '_' and '-'; part of the run id")
    description: str = ""
    seed: Seed = 0
    data: DataConfig = Field(default_factory=DataConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    crossbar: dict[str, Any] = Field(default_factory=lambda: {"kind": "twin"})
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _per_block_lists(self) -> RunConfig:
        blocks = len(self.network.hidden) + 1
        for key in ("eta", "eta_bias"):
            value = getattr(self.train, key)
            if isinstance(value, list) and len(value) != blocks:
                raise ValueError(f"train.{key} needs one value per block ({blocks}), got {len(value)}")
        if not self.network.biases and self.network.init_hidden_bias:
            raise ValueError("network.init_hidden_bias: a network without biases (network.biases: false) starts "
                             "none; set it to 0")
        if not self.network.biases and self.train.eta_bias is not None:
            raise ValueError("train.eta_bias: a network without biases (network.biases: false) learns none; "
                             "remove it")
        if not isinstance(self.crossbar.get("kind", "twin"), str):
            raise ValueError("crossbar.kind must be a string such as 'twin'")
        return self


def _clean_loc(loc: tuple[Any, ...], data: Any, missing: bool) -> list[Any]:
    """The key path without pydantic's union tags (`constrained-float`, `list[...]`, a discriminator value).

    A part is a tag when the input has no such key or index; only a missing key may be absent.
    """
    out, node, found = [], data, True
    for i, part in enumerate(loc):
        if found and isinstance(node, dict) and part in node:
            node = node[part]
        elif found and isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif missing and i == len(loc) - 1:
            pass
        else:
            continue
        out.append(part)
    return out


def describe(error: ValidationError, prefix: str = "", data: Any = None) -> tuple[str, str]:
    """The key path and what was expected (`key: expected`), for the most telling error.

    An unknown key is reported before the missing one it was probably meant to be, and of the
    branches of a union the one that got furthest into the input.
    """
    errors = error.errors()
    cleaned = [_clean_loc(e["loc"], data, e["type"] == "missing") for e in errors]
    order = sorted(range(len(errors)), key=lambda i: (errors[i]["type"] != "extra_forbidden", -len(errors[i]["loc"])))
    first, loc_parts = errors[order[0]], cleaned[order[0]]
    loc = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + loc_parts)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        missing = [c[-1] for e, c in zip(errors, cleaned) if e["type"] == "missing" and c[:-1] == loc_parts[:-1]]
        close = difflib.get_close_matches(str(loc_parts[-1]), [str(m) for m in missing], n=1)
        msg = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    elif "input" in first and first["type"] != "missing" and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    others = {tuple(c) for c in cleaned if tuple(c) != tuple(loc_parts)[: len(c)]}  # not the union's other branches
    tail = f" (+{len(others)} more error{'s' if len(others) > 1 else ''})" if others else ""
    return loc, (f"{loc}: " if loc else "") + msg + tail


def validate_section(model: type[M], data: Any, source: str, prefix: str = "") -> M:
    """Validate `data` against `model`; a failure is a ConfigError naming `source` and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        key, detail = describe(exc, prefix, data)
        raise ConfigError(f"{source}: {detail}", key=key, detail=detail) from None


@contextmanager
def blame_overrides(overrides: list[str]) -> Iterator[None]:
    """Report a config error at a key that `--set` gave against that `--set`, not against the file."""
    try:
        yield
    except ConfigError as exc:
        for item in reversed(overrides):  # the last --set of a key is the one that counts
            key = item.partition("=")[0]
            if exc.key and (exc.key == key or exc.key.startswith(key + ".") or key.startswith(exc.key + ".")):
                raise ConfigError(f"--set {item}: {exc.detail}", key=exc.key, detail=exc.detail) from None
        raise


def parse_yaml(raw: bytes, source: str) -> Any:
    """Parse YAML bytes; a binary or malformed file is a ConfigError that names it (and the line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not a YAML text file (byte {exc.start} is not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"{source}: not a YAML text file (it holds NUL bytes)")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping; missing, binary or malformed files are ConfigErrors that name the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    data = parse_yaml(raw, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML) to a nested mapping."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def resolve_config_path(name: str) -> Path:
    """A config given by path, or by the name of one shipped in hil.protocols/configs."""
    path = Path(name)
    if path.exists():
        return path
    shipped = resources.files("hil.protocols") / "configs" / (path.name if path.suffix else f"{name}.yaml")
    if shipped.is_file():
        return Path(str(shipped))
    return path


def load_config(name: str | Path, overrides: list[str] | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """Load, override and validate a run config; returns the model and the resolved raw mapping."""
    path = resolve_config_path(str(name))
    data = apply_overrides(read_yaml(path), overrides or [], str(path))
    cfg = validate_section(RunConfig, data, str(path))
    return cfg, cfg.model_dump(mode="json")
