"""The `streamdrift` command.

Exit codes (documented in the README):
  0  success
  1  runtime failure (broker unreachable, fenced, a write that failed)
  2  bad arguments or an invalid config file (one line per problem on stderr)
  130 interrupted, or a second SIGTERM/SIGINT forced the exit
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

import orjson

from streamdrift import __version__
from streamdrift.cli.profile import add_profile_parser
from streamdrift.cli.replay_options import add_report_arguments
from streamdrift.cli.tune import add_tune_parser
from streamdrift.errors import ConfigError, StreamdriftError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

GC_YOUNG_THRESHOLD = 100_000  # net new container objects between young collections (Python's default: 700)
# How long the processing loop may hold the GIL while another thread asks for it (Python's default: 5 ms).
SWITCH_INTERVAL_S = 0.0005


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line, not usage text."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamdrift", description="Drift monitor for ML models over Kafka.")
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="run the detection service (a consumer group member)")
    run.add_argument("--config", required=True, help="YAML config file (reloaded on SIGHUP)")
    run.add_argument("--watch", action="store_true", help="also reload the config file whenever it changes")
    run.add_argument(
        "--rebuild-state-from", metavar="OFFSET|TIME",
        help="also re-read the input from this offset (every partition) or RFC 3339 time at every restore, "
        "alerts muted: rebuilds models whose snapshots were rejected (e.g. after a river upgrade)",
    )  # fmt: skip
    run.set_defaults(handler=_run)

    config = commands.add_parser("config", help="validate a config file, or print its JSON Schema")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = config_commands.add_parser("validate", help="print OK, or every problem (exit 2)")
    validate.add_argument("file")
    validate.set_defaults(handler=_config_validate)
    schema = config_commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(handler=_config_schema)

    replay = commands.add_parser(
        "replay", help="run the detection core over a JSONL file of events or a range of a topic"
    )
    replay.add_argument(
        "--config", required=True, help="YAML config file (its Kafka settings serve --topic only)"
    )
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSONL file: one inference event per line")
    source.add_argument("--topic", help="read this topic (read_committed), partition after partition")
    replay.add_argument(
        "--from", dest="start", metavar="OFFSET|TIME",
        help="with --topic: start at this offset (in every partition) or RFC 3339 time (inclusive)",
    )  # fmt: skip
    replay.add_argument(
        "--to", dest="stop", metavar="OFFSET|TIME", help="with --topic: stop before this offset or time"
    )
    replay.add_argument("--output", help="write alerts here as JSONL (default: standard output)")
    add_report_arguments(replay)
    replay.set_defaults(handler=_replay)

    add_tune_parser(commands)
    add_profile_parser(commands)

    alerts = commands.add_parser("alerts", help="read the alerts topic")
    alerts_commands = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    tail = alerts_commands.add_parser("tail", help="a readable live view of the alerts topic")
    tail.add_argument("--config", required=True)
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument("--json", action="store_true", help="print each alert's JSON instead")
    tail.add_argument("--max-alerts", type=_at_least_one, help="exit after this many alerts")
    tail.add_argument(
        "--group",
        help="read as this consumer group: resume where it left off, share partitions with its members",
    )
    tail.set_defaults(handler=_alerts_tail)
    route = alerts_commands.add_parser(
        "route", help="deliver alerts to Alertmanager and webhooks, as the routes file says"
    )
    route.add_argument("--config", required=True, help="the routes file (README: Routing alerts)")
    route.set_defaults(handler=_alerts_route)
    schema = alerts_commands.add_parser("schema", help="print the alert record's JSON Schema")
    schema.set_defaults(handler=_alerts_schema)

    demo = commands.add_parser("demo", help="end-to-end demo on a broker (KAFKA_BOOTSTRAP_SERVERS)")
    demo.add_argument("--bootstrap-servers", help="default: $KAFKA_BOOTSTRAP_SERVERS")
    demo.add_argument(
        "--client",
        choices=["kafka-python", "confluent"],
        default="kafka-python",
        help="the Kafka client library",
    )
    demo.add_argument("action", nargs="?", choices=["produce"], help="only produce the demo events")
    demo.add_argument("--topic", help="with 'produce': the topic to write to")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"streamdrift: {problem}\n")
        return EXIT_USAGE
    except StreamdriftError as exc:
        sys.stderr.write(f"streamdrift: {_one_line(str(exc))}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a failure nobody classified: still one line and exit 1, never a traceback
        import structlog

        # The traceback goes to the log as one event (a JSON line in production), for the bug report.
        structlog.get_logger("streamdrift").error("unexpected error", exc_info=exc)
        sys.stderr.write(f"streamdrift: unexpected error: {type(exc).__name__}: {_one_line(str(exc))}\n")
        return EXIT_FAILURE
    return code


def console() -> NoReturn:
    """The `streamdrift` command: `main`, then the exit. With librdkafka loaded the exit skips the
    interpreter's finalization: a client given up on (a first connection that failed for good) may still have
    librdkafka threads calling back into Python, and finalizing under them has crashed the process (SIGSEGV
    after the one-line error), losing the exit code."""
    code = main()
    if "confluent_kafka" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _run(args: argparse.Namespace) -> int:
    from streamdrift.service.shutdown import install_stop_handlers

    stop = threading.Event()
    # First, before the heavy imports (River, kafka-python, numpy): a SIGTERM during startup still means
    # "stop cleanly".
    install_stop_handlers(stop)

    from streamdrift.cli.bounds import parse_bound
    from streamdrift.config import load_config
    from streamdrift.service.logs import configure_logging
    from streamdrift.service.reload import ReloadTrigger
    from streamdrift.service.runner import DriftService
    from streamdrift.transports import open_transport

    rebuild_from = parse_bound("--rebuild-state-from", args.rebuild_state_from)
    reload = ReloadTrigger(args.config, watch=args.watch)
    reload.install_signal_handler()  # a SIGHUP during startup is kept for the loop, not fatal
    config = load_config(args.config)
    configure_logging(config.logging.level, config.logging.format)
    _tune_interpreter_for_the_loop()
    service = DriftService(
        config, open_transport(config.kafka), stop=stop, reload=reload, rebuild_from=rebuild_from
    )
    service.run()
    return EXIT_OK


def _tune_interpreter_for_the_loop() -> None:
    """The garbage collector and the GIL set for a long-running processing loop (`run` only)."""
    # What startup made (modules, config) lives as long as the process: out of the garbage collector's way,
    # so that its full passes walk little more than the models' state (measured over 200k events: 0.32 ->
    # 0.08 s in full collections; River's imports bring scipy's many objects).
    gc.freeze()
    # A fetched batch's events live until the batch is processed (tens of thousands of objects): with the
    # default threshold (700) the collector runs every few dozen events, finds them all alive, and promotes
    # them to older generations it then walks again. Reference counting frees them; the collector is only
    # for cycles, which the loop does not make, so it may wait longer.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    # kafka-python 3 fetches and sends on an I/O thread per client (the consumer's, the producer's), in
    # Python: each time one wakes (a fetch answered, the next to send) it waits for the busy processing loop
    # to hand over the GIL, up to the switch interval. At Python's 5 ms the loop was left waiting for fetches
    # in some runs and not others (29-37k or 42-48k events/s at 10,000 models, run to run); at 0.5 ms the I/O
    # threads keep fetches ahead of it: 1.25x at 10,000 models and 1.45x at 100 side by side with 5 ms in one
    # run (README "Performance", step 6).
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _config_validate(args: argparse.Namespace) -> int:
    from streamdrift.config import load_config

    config = load_config(args.file)
    print("OK")
    fleet = config.fleet_budget()  # the false-alarm budget's calibration and what it implies for the fleet
    if fleet is not None:
        print(fleet.summary())
    return EXIT_OK


def _config_schema(_args: argparse.Namespace) -> int:
    from streamdrift.config import StreamdriftConfig

    schema = StreamdriftConfig.model_json_schema()
    sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from streamdrift.cli.replay import replay_file
    from streamdrift.cli.replay_options import report_options

    return replay_file(
        args.config, args.input, args.output, topic=args.topic, start=args.start, stop=args.stop,
        **report_options(args),
    )  # fmt: skip


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a positive count")
    return number


def _alerts_tail(args: argparse.Namespace) -> int:
    from streamdrift.cli.tail import tail_alerts

    return tail_alerts(
        args.config,
        from_beginning=args.from_beginning,
        as_json=args.json,
        limit=args.max_alerts,
        group_id=args.group,
    )


def _alerts_route(args: argparse.Namespace) -> int:
    from streamdrift.routing.router import route_alerts

    return route_alerts(args.config)


def _alerts_schema(args: argparse.Namespace) -> int:
    from streamdrift.subscriber import alert_schema

    sys.stdout.write(alert_schema())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streamdrift.demo.run import demo_main

    return demo_main(
        bootstrap=args.bootstrap_servers, action=args.action, topic=args.topic, client=args.client
    )
