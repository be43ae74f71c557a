"""YAML config files -> typed, validated settings; secrets only from the environment.

Three files work together, all beside each other in `config/` by default:
  koubei.yaml   sources, HTTP politeness, Slack channels, outbox, store
  policy.yaml   grades (colour, label, channel), SLAs, escalation, grade raises
  lexicon.yaml  the rules grader's words (signals, categories, sentiment cues)
`koubei.yaml` names the other two. A problem in any of them is a ConfigError
naming the file, the key path and what is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.domain import AlertKind, Category, GradedCategory, Severity
from monitor.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "koubei.yaml"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "koubei-bert-small-l8"
# The shipped cascade's second model: it grades every post, DEFAULT_MODEL decides P1 pages.
DEFAULT_ENCODER = DEFAULT_MODEL.parent / "koubei-e5-small6f"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- koubei.yaml -----------------------------------------------------------------


class SourceConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: str
    # Empty: the kind's own API host (App Store Connect); kinds without one require it.
    base_url: str = Field(default="", pattern=r"^(https?://.*)?$")
    enabled: bool = True
    interval_minutes: float = Field(default=30, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class HttpConfig(Strict):
    user_agent: str = "Koubei/0.1 (reputation monitor)"
    timeout_s: float = Field(default=15, gt=0)
    # The most one try may take, connect to last byte, redirects included: a source
    # dripping bytes never trips the per-read timeout above.
    deadline_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=1.0, ge=0)
    max_retry_after_s: float = Field(default=120, ge=0)
    default_rate_per_s: float = Field(default=1.0, gt=0)
    rate_per_s: dict[str, float] = Field(default_factory=dict)
    # Other hosts a source's host may redirect to (it may always redirect to itself).
    redirect_hosts: dict[str, list[str]] = Field(default_factory=dict)


class SlackConfig(Strict):
    base_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://.*/$")
    channels: dict[str, str]
    alerts_jsonl: str = "out/alerts.jsonl"
    rate_limit_retries: int = Field(default=3, ge=0, le=10)
    timeout_s: float = Field(default=10, gt=0)


SinkKind = Literal["slack", "wecom", "dingtalk", "feishu", "console"]
_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class SinkConfig(Strict):
    """One place notices go (koubei.yaml `sinks:`). Secrets and webhook URLs are never in
    the file: `url_env` and `secret_env` name the environment variables holding them."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    kind: SinkKind
    url_env: str | None = Field(default=None, pattern=_ENV_NAME)
    secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    # Which notices go here: grades and notice kinds (alert kinds); empty: all of them.
    # A notice without a grade (ops notices) goes only to sinks that list no grades.
    grades: list[Literal["P1", "P2", "P3", "P4"]] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    # Route key (crisis, complaints, digest, ops, executives) -> the sink's channel.
    # Slack: a channel name or id (default: slack.channels); robots post to their group.
    channels: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)  # kind-specific settings

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        known = {k.value for k in AlertKind}
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise ValueError(
                f"unknown notice kinds {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return kinds

    def takes(self, grade: Severity | None, kind: str) -> bool:
        """Whether a notice of this grade and kind goes to this sink."""
        if self.grades and (grade is None or grade.value not in self.grades):
            return False
        # A burst of new cases rides in a group message: a sink taking new cases takes it.
        return (
            not self.kinds or kind in self.kinds or (kind == "group" and "new_case" in self.kinds)
        )


class OutboxConfig(Strict):
    interval_seconds: float = Field(default=10, gt=0)
    batch_size: int = Field(default=50, gt=0)
    lease_seconds: float = Field(default=120, gt=0)
    max_backoff_seconds: float = Field(default=600, gt=0)
    # Slack allows about one message per second per channel (chat.postMessage).
    per_channel_per_second: float = Field(default=1.0, gt=0)


class DigestConfig(Strict):
    hour: int = Field(default=9, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)


class ReportsConfig(Strict):
    out_dir: str = "out/reports"
    channel: str = "executives"  # a key of slack.channels
    # The weekly PR digest of shortlisted good stories (Monday, at `hour`): the PR team's channel.
    stories_channel: str = "crisis"
    hour: int = Field(default=9, ge=0, le=23)  # monthly on the 1st, weekly on Monday


class ServeConfig(Strict):
    # Slack's interaction payloads are a few kilobytes; a larger body is refused (413)
    # before it is read in full or its signature checked.
    max_body_bytes: int = Field(default=1_048_576, ge=16_384, le=64 * 1_048_576)


class StoreConfig(Strict):
    sqlite_path: str = "var/koubei.db"


class ClassifierConfig(Strict):
    kind: Literal["model", "rules"] = "model"
    # A model directory (relative to this config file): koubei train's output or any
    # Hugging Face sequence-classification checkpoint exported with `koubei export-onnx`.
    model: str | None = None  # default: DEFAULT_MODEL
    # A second model (relative to this config file) that grades every post; `model` alone
    # decides P1 crisis pages (monitor/classify/cascade.py). Unset: the shipped encoder when
    # `model` is unset too (the shipped pair), none when `model` names your own; "none": none.
    encoder: str | None = None
    threads: int | None = Field(default=None, ge=1, le=64)
    batch_size: int = Field(default=64, ge=1, le=1024)
    category_threshold: float = Field(default=0.35, gt=0, lt=1)
    # The model's grade levels ("at least P2/P3") raise a complaint's grade at this probability.
    level_threshold: float = Field(default=0.5, gt=0, lt=1)


class SchedulerConfig(Strict):
    """Several `koubei run` instances on one PostgreSQL database share the jobs."""

    # A job whose instance died is taken over by another within this many seconds.
    failover_seconds: float = Field(default=60, ge=2)
    sweep_seconds: float = Field(default=30, gt=0)  # the SLA sweeper and the surge check
    # `koubei run` serves /metrics and /healthz here; None: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"


class LoggingConfig(Strict):
    format: Literal["human", "json"] = "human"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AppConfig(Strict):
    timezone: str = "Asia/Shanghai"
    classifier: ClassifierConfig = ClassifierConfig()
    policy_file: str = "policy.yaml"
    lexicon_file: str = "lexicon.yaml"
    store: StoreConfig = StoreConfig()
    http: HttpConfig = HttpConfig()
    slack: SlackConfig
    # Where notices go; empty: one sink "slack" (the console without SLACK_BOT_TOKEN).
    sinks: list[SinkConfig] = Field(default_factory=list)
    # The case board's address (https://koubei.example.com): sinks without buttons link
    # each case's page here. Empty: no link.
    board_url: str = Field(default="", pattern=r"^(https?://[^\s]*[^/\s])?$")
    outbox: OutboxConfig = OutboxConfig()
    digest: DigestConfig = DigestConfig()
    reports: ReportsConfig = ReportsConfig()
    serve: ServeConfig = ServeConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    logging: LoggingConfig = LoggingConfig()
    sources: list[SourceConfig]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai "
                "(the list: python -c 'import zoneinfo; print(zoneinfo.available_timezones())')"
            ) from None
        return name

    @field_validator("sinks")
    @classmethod
    def _unique_sinks(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        names = [s.name for s in sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique; repeated: {', '.join(dupes)}")
        return sinks

    def sink_configs(self) -> list[SinkConfig]:
        """The configured sinks, or the default: one Slack sink named "slack"."""
        if self.sinks:
            return [
                s.model_copy(update={"channels": {**self.slack.channels, **s.channels}})
                if s.kind == "slack"
                else s
                for s in self.sinks
            ]
        return [SinkConfig(name="slack", kind="slack", channels=dict(self.slack.channels))]

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return sources


# --- policy.yaml -----------------------------------------------------------------


class EscalationStep(Strict):
    after_minutes: float = Field(gt=0)
    notify: list[str]


class GradePolicy(Strict):
    label: str
    colour: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    channel: str
    mention: str = ""
    digest: bool = False
    ack_minutes: float | None = Field(default=None, gt=0)
    response_minutes: float | None = Field(default=None, gt=0)
    resolve_minutes: float | None = Field(default=None, gt=0)
    escalation: list[EscalationStep] = Field(default_factory=list)
    # 回访: days after resolution that customer service calls the customer back.
    followup_days: float | None = Field(default=None, gt=0)


class PlatformIds(Strict):
    """A person's or a group's ids on the chat platforms, for mentions."""

    wecom: str | None = None  # WeCom user id or mobile number
    dingtalk: str | None = None  # DingTalk mobile number or user id
    feishu: str | None = None  # Feishu open id (ou_...)


class Role(PlatformIds):
    name: str
    slack: str


class Person(PlatformIds):
    """Someone notices may mention by key (policy.yaml `people:`)."""

    name: str
    slack: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")


class RaisePolicy(Strict):
    votes_at_least: int | None = Field(default=None, gt=0)
    amount_yuan_at_least: float | None = Field(default=None, gt=0)


_QUIET_GRADES: list[Literal["P3", "P4"]] = ["P3", "P4"]


class QuietHours(Strict):
    """Local (Asia/Shanghai) hours when alerts of the listed grades wait; P1/P2 never wait."""

    start: time
    end: time
    grades: list[Literal["P3", "P4"]] = Field(default_factory=lambda: _QUIET_GRADES.copy())


class OncallPerson(PlatformIds):
    name: str
    slack: str = Field(pattern=r"^[UW][A-Z0-9]{2,}$", description="Slack user id")


class OncallOverride(OncallPerson):
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-28T09:00:00+08:00")
        return value


class Oncall(Strict):
    rotation: list[OncallPerson] = Field(min_length=1)
    handover: time = time(9, 0)
    period_days: int = Field(default=7, gt=0)
    first_shift: date = Field(description="the local date the first person's shift began")
    overrides: list[OncallOverride] = Field(default_factory=list)


class Grouping(Strict):
    """Many P3 cases in a short window become one Slack message."""

    window_minutes: float = Field(default=10, gt=0)
    at_least: int = Field(default=3, ge=2)
    max_per_message: int = Field(default=15, ge=2, le=20)


class Surge(Strict):
    window_hours: float = Field(default=1, gt=0)
    baseline_days: int = Field(default=7, gt=0)
    # A source counts once it has collected this long before the window: no cold-start surges.
    history_days: float = Field(default=3, gt=0)
    multiple: float = Field(default=3, gt=1)
    minimum: int = Field(default=5, gt=0)
    channel: str = "complaints"


class Watchdog(Strict):
    stale_after_seconds: float = Field(default=180, gt=0)
    heartbeat_seconds: float = Field(default=30, gt=0)
    external_url: str | None = Field(default=None, pattern=r"^https?://")
    ops_channel: str = "ops"


class NearDuplicates(Strict):
    """The same complaint on several platforms, reposted or updated, is one case."""

    shingle: int = Field(default=3, ge=2, le=6)
    threshold: float = Field(default=0.7, gt=0, le=1)
    window_days: float = Field(default=14, gt=0)


class SourceHealth(Strict):
    failures_in_a_row: int = Field(default=3, ge=1)
    baseline_runs: int = Field(default=10, ge=1)


class Policy(Strict):
    grades: dict[Literal["P1", "P2", "P3", "P4"], GradePolicy]
    roles: dict[str, Role] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)
    oncall: Oncall | None = None
    quiet_hours: QuietHours | None = None
    reminder_at_fraction: float = Field(default=0.8, gt=0, lt=1)
    followup_overdue_days: float = Field(default=2, gt=0)
    grouping: Grouping = Grouping()
    surge: Surge = Surge()
    watchdog: Watchdog = Watchdog()
    source_health: SourceHealth = SourceHealth()
    near_duplicates: NearDuplicates = NearDuplicates()
    raise_one_step: RaisePolicy = RaisePolicy()
    # The lowest grade a complaint gets when the model finds this category in it.
    category_floor: dict[GradedCategory, Literal["P2", "P3", "P4"]] = Field(default_factory=dict)
    case_join_window_hours: float = Field(default=72, gt=0)
    regulatory_decision_days: int = Field(default=15, gt=0)

    def grade(self, severity: Severity) -> GradePolicy:
        return self.grades[severity.value]  # type: ignore[index]

    def person(self, key: str) -> Person | OncallPerson | None:
        """Whom a mention's person key names: a key of `people`, or anyone (people, the
        on-call rotation and its overrides) by Slack id or name."""
        if key in self.people:
            return self.people[key]
        everyone: list[Person | OncallPerson] = list(self.people.values())
        if self.oncall is not None:
            everyone += [*self.oncall.rotation, *self.oncall.overrides]
        for person in everyone:
            if person.slack == key or person.name == key:
                return person
        return None

    @field_validator("grades")
    @classmethod
    def _all_grades(cls, grades: dict[str, GradePolicy]) -> dict[str, GradePolicy]:
        missing = [g for g in ("P1", "P2", "P3", "P4") if g not in grades]
        if missing:
            raise ValueError(f"every grade needs a policy; missing: {', '.join(missing)}")
        return grades


# --- lexicon.yaml ----------------------------------------------------------------


class Lexicon(Strict):
    negations: list[str]
    negation_window: int = Field(default=4, ge=0, le=10)
    adjacent_negations: list[str] = Field(default_factory=list)
    not_denials: list[str] = Field(default_factory=list)
    rhetorical_tails: list[str] = Field(default_factory=list)
    confirming_markers: list[str] = Field(default_factory=list)
    contrast_markers: list[str] = Field(default_factory=list)
    either_or: list[str] = Field(default_factory=list)
    reported_markers: list[str] = Field(default_factory=list)
    question_markers: list[str]
    question_endings: list[str] = Field(default_factory=list)
    topics: list[str] = Field(
        default_factory=list,
        description="words naming what a post is about: they grade a complaint, not show one",
    )
    negative: list[str]
    positive: list[str]
    signals: dict[
        Literal["self_harm", "threat", "third_party", "regulator", "media", "legal", "collective"],
        list[str],
    ]
    categories: dict[Category, list[str]]
    harm: list[str] = Field(description="P2: money or rights harmed")
    money_categories: list[Category] = Field(
        default_factory=list,
        description="categories that make a post about money or rights: a model's P2 reading "
        "counts only where one of them (or a harm word) is present",
    )
    failures: list[str] = Field(
        default_factory=list,
        description="P3 failures that make a post a complaint whatever its tone",
    )
    failure_patterns: list[str] = Field(
        default_factory=list,
        description="regular expressions for failures (a verb and its 'cannot' complement)",
    )
    idioms: list[str] = Field(
        default_factory=list,
        description="phrases in which a lexicon term means something else: it is not counted",
    )
    joke_markers: list[str] = Field(
        default_factory=list,
        description="an escalation word near one of these is a joke: it is not counted",
    )

    @field_validator("failure_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"item {i} {pattern!r} is not a valid regular expression ({exc}); "
                    "write it as Python's re module reads it"
                ) from exc
        return value

    money_words: list[str] = Field(
        default_factory=list,
        description="words naming money or personal data: a model's P2 reading counts with one",
    )
    blocking: list[str] = Field(description="P3: a service failure that blocks the customer")


# --- secrets ----------------------------------------------------------------------


class Secrets(Strict):
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    database_url: SecretStr | None = None
    ingest_secret: SecretStr | None = None  # signs the app backend's feedback events
    # Signs the case board's session cookies; every instance must share it.
    session_secret: SecretStr | None = None
    # OpenID Connect sign-in to the board (any provider: Keycloak, Slack, Feishu, ...).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env

        def get(key: str) -> SecretStr | None:
            value = env.get(key, "").strip()
            return SecretStr(value) if value else None

        return cls(
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            database_url=get("DATABASE_URL"),
            ingest_secret=get("KOUBEI_INGEST_SECRET"),
            session_secret=get("KOUBEI_SESSION_SECRET"),
            oidc_issuer=env.get("KOUBEI_OIDC_ISSUER", "").strip() or None,
            oidc_client_id=env.get("KOUBEI_OIDC_CLIENT_ID", "").strip() or None,
            oidc_client_secret=get("KOUBEI_OIDC_CLIENT_SECRET"),
        )

    def problems(self) -> list[str]:
        """What is wrong with the environment's values (never quoting a secret)."""
        if self.database_url is None:
            return []
        hint = "expected postgresql://user:password@host:5432/dbname or sqlite:////path/koubei.db"
        try:
            backend = make_url(self.database_url.get_secret_value()).get_backend_name()
        except (ArgumentError, ValueError):
            return [f"DATABASE_URL: not a database URL ({hint})"]
        if backend not in ("postgresql", "postgres", "sqlite"):
            return [f"DATABASE_URL: {backend!r} databases are not supported ({hint})"]
        return []


# --- loading ----------------------------------------------------------------------


class Settings(Strict):
    """Everything a run needs, validated together."""

    path: Path
    app: AppConfig
    policy: Policy
    lexicon: Lexicon
    secrets: Secrets

    def database_url(self) -> str:
        if self.secrets.database_url is not None:
            return self.secrets.database_url.get_secret_value()
        db = Path(self.app.store.sqlite_path)
        if not db.is_absolute():
            db = Path.cwd() / db
        return f"sqlite:///{db}"

    def model_dir(self) -> Path:
        if self.app.classifier.model is None:
            return DEFAULT_MODEL
        model = Path(self.app.classifier.model)
        return model if model.is_absolute() else (self.path.parent / model).resolve()

    def encoder_dir(self) -> Path | None:
        """The cascade's second model, or None for the first model alone."""
        cfg = self.app.classifier
        if cfg.encoder is None or not cfg.encoder.strip():
            return DEFAULT_ENCODER if cfg.model is None else None
        if cfg.encoder.strip().lower() == "none":
            return None
        enc = Path(cfg.encoder)
        return enc if enc.is_absolute() else (self.path.parent / enc).resolve()

    def source(self, name: str) -> SourceConfig:
        for src in self.app.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.app.sources) or "(none)"
        raise ConfigError(str(self.path), [f"sources: no source named {name!r}; known: {known}"])


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            str(path), ["file not found (pass --config or set KOUBEI_CONFIG)"]
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path),
            [
                f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); save the file as UTF-8"
            ],
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = _duplicate_keys(node, "", set())
        if duplicates:
            raise ConfigError(str(path), duplicates)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML: {problem}"]) from None
    except RecursionError:
        raise ConfigError(str(path), ["(top level): nested too deeply to be a config"]) from None
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: str, seen_nodes: set[int]) -> list[str]:
    """Keys given twice in one mapping: YAML loaders keep the last silently, which hides
    a mistake (two `sources:` lists, one of them ignored)."""
    if id(node) in seen_nodes:  # an alias to a node already walked
        return []
    seen_nodes.add(id(node))
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            where = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key != "<<":
                ident = (key_node.tag, key)
                if ident in first_line:
                    problems.append(
                        f"{where}: duplicate key at line {line} (first at line "
                        f"{first_line[ident]}); keep one of them"
                    )
                else:
                    first_line[ident] = line
            problems += _duplicate_keys(value_node, where, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{path}[{i}]", seen_nodes)
    return problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _validate(model: type[M], path: Path, data: Any) -> M:
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of keys to values"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{_key_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise ConfigError(str(path), problems) from None


def resolve_config_path(explicit: str | Path | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("KOUBEI_CONFIG", "").strip()
    return Path(env) if env else DEFAULT_CONFIG


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    cfg_path = resolve_config_path(path)
    app = _validate(AppConfig, cfg_path, _read_yaml(cfg_path))
    policy_path = cfg_path.parent / app.policy_file
    policy = _validate(Policy, policy_path, _read_yaml(policy_path))
    lexicon_path = cfg_path.parent / app.lexicon_file
    lexicon = _validate(Lexicon, lexicon_path, _read_yaml(lexicon_path))
    _check_cross_references(cfg_path, app, policy_path, policy)
    secrets = Secrets.from_env(env)
    if problems := secrets.problems():
        raise ConfigError("environment", problems)
    return Settings(path=cfg_path, app=app, policy=policy, lexicon=lexicon, secrets=secrets)


def _check_cross_references(
    cfg_path: Path, app: AppConfig, policy_path: Path, policy: Policy
) -> None:
    from monitor.collectors import validate_source_options

    problems: list[str] = []
    for i, src in enumerate(app.sources):
        problems += [f"sources[{i}]{p}" for p in validate_source_options(src)]
    if app.reports.channel not in app.slack.channels:
        problems.append(f"reports.channel: {app.reports.channel!r} is not a key of slack.channels")
    if app.reports.stories_channel not in app.slack.channels:
        problems.append(
            f"reports.stories_channel: {app.reports.stories_channel!r} is not a key of "
            "slack.channels"
        )
    if problems:
        raise ConfigError(str(cfg_path), problems)
    for grade, gp in policy.grades.items():
        if gp.channel not in app.slack.channels:
            known = ", ".join(app.slack.channels)
            problems.append(
                f"grades.{grade}.channel: {gp.channel!r} is not a channel key in "
                f"{cfg_path.name} slack.channels (known: {known})"
            )
        for j, step in enumerate(gp.escalation):
            for role in step.notify:
                if role not in policy.roles and not (role == "oncall" and policy.oncall):
                    problems.append(f"grades.{grade}.escalation[{j}].notify: unknown role {role!r}")
    for name, key in (
        ("surge.channel", policy.surge.channel),
        ("watchdog.ops_channel", policy.watchdog.ops_channel),
    ):
        if key not in app.slack.channels:
            problems.append(
                f"{name}: {key!r} is not a channel key in {cfg_path.name} slack.channels"
            )
    if problems:
        raise ConfigError(str(policy_path), problems)
