# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line of the lab: ``python -m tests.lab {start,stop,dump,fault,clock,ca,mode,serve} --state-dir DIR``.

Exit codes: 0 success, 2 bad arguments or a request the lab refuses (unknown server, bad duration, ...),
1 the lab could not be started.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from tests.lab.control import ControlClient, ControlError, parse_duration, start_daemon, stop_daemon

DEFAULT_FLEET = "tests.lab.model:Fleet"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text.lower() == "on"


def _fleet_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", help="scenario name (tests/lab/scenarios/NAME.yml) or YAML file")
    source.add_argument("--servers", type=_positive_int, help="generate a fleet of N servers")
    parser.add_argument(
        "--transport",
        choices=("ntlm", "basic"),
        default="ntlm",
        help="ansible_winrm_transport written in the inventory (both are always accepted)",
    )
    parser.add_argument(
        "--scheme",
        choices=("http", "https"),
        default="http",
        help="ansible_winrm_scheme written in the inventory (both listeners always run)",
    )
    parser.add_argument(
        "--receive-wait",
        type=_seconds,
        default=None,
        help="seconds a Receive waits for a running command before the operation-timeout fault",
    )
    parser.add_argument(
        "--fleet-class",
        default=DEFAULT_FLEET,
        help="module:class implementing the Fleet interface of ARCHITECTURE.md (tests use a fake)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="The simulated Exchange fleet.")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", type=Path, required=True, help="the lab's state directory")
        return sub

    _fleet_options(command("start", "start the lab in the background"))
    _fleet_options(command("serve", "run the lab in the foreground (what start spawns)"))
    command("stop", "stop the lab (exit 0 when it is not running)")
    command("dump", "print the whole model state as JSON")

    fault = command("fault", "inject or clear a fault on a server")
    fault.add_argument("--server", required=True)
    fault.add_argument(
        "--operation", help="operation name (docs/remote-protocol.md), win_ping, mkdtemp, put_file, fetch_file or *"
    )
    action = fault.add_mutually_exclusive_group(required=True)
    action.add_argument("--error", metavar="MSG", help="fail the operation with this message")
    action.add_argument("--latency", type=_seconds, metavar="SECONDS", help="delay the operation")
    action.add_argument("--drop", action="store_true", help="close the connection without an answer")
    action.add_argument("--clear", action="store_true", help="clear every fault of the server")
    action.add_argument("--unreachable", action="store_true", help="refuse WinRM connections to the server")
    action.add_argument("--reachable", action="store_true", help="serve WinRM connections to the server again")
    fault.add_argument("--times", type=_positive_int, help="apply the fault this many times (default: until cleared)")
    fault.add_argument("--after", type=_positive_int, metavar="N",
                       help="let the first N calls of the operation pass, then apply the fault")

    clock = command("clock", "advance the lab clock")
    clock.add_argument(
        "--advance", type=_duration, required=True, metavar="DURATION", help="e.g. 90s, 15m, 49h, 3d, 1w, 2d12h"
    )

    ca = command("ca", "decide a pending AD CS request")
    ca.add_argument("decision", choices=("approve", "deny"))
    ca.add_argument("request_id", type=_positive_int, metavar="REQUEST_ID")

    mode = command("mode", "switch server behaviour")
    mode.add_argument("--server", required=True)
    mode.add_argument(
        "--rawdata-only",
        type=_on_off,
        required=True,
        metavar="on|off",
        help="Get-ExchangeCertificate returns RawData-only objects",
    )
    return parser


def _fault_request(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"server": args.server}
    if args.clear:
        return {**request, "clear": True}
    if args.unreachable or args.reachable:
        return {**request, "unreachable": bool(args.unreachable)}
    if not args.operation:
        parser.error("fault: --operation is required with --error, --latency or --drop")
    return {
        **request,
        "operation": args.operation,
        "error": args.error,
        "latency": args.latency,
        "drop": args.drop,
        "times": args.times,
        "after": args.after,
    }


def _serve_args(args: argparse.Namespace) -> list[str]:
    serve = ["--scenario", args.scenario] if args.scenario else ["--servers", str(args.servers)]
    serve += ["--transport", args.transport, "--scheme", args.scheme, "--fleet-class", args.fleet_class]
    return serve + (["--receive-wait", str(args.receive_wait)] if args.receive_wait is not None else [])


def _load_fleet(args: argparse.Namespace) -> Any:
    module_name, _sep, class_name = args.fleet_class.partition(":")
    fleet_class = getattr(importlib.import_module(module_name), class_name)
    if args.scenario:
        scenario: Any = args.scenario
    else:
        from tests.lab.model.generate import generate_scenario

        scenario = generate_scenario(args.servers)
    return fleet_class.from_scenario(scenario)


def serve(args: argparse.Namespace) -> int:
    """Run the lab in this process until stopped by the control API or a signal."""
    from tests.lab.daemon import Lab, LabOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tuning = {"receive_wait": args.receive_wait} if args.receive_wait is not None else {}
    options = LabOptions(transport=args.transport, scheme=args.scheme, **tuning)
    lab = Lab(_load_fleet(args), args.state_dir.resolve(), options)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: lab.request_stop())
    lab.start()
    try:
        lab.wait()
    finally:
        lab.stop()
        logging.getLogger("tests.lab").info("lab stopped")
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "start":
            pid = start_daemon(state_dir, _serve_args(args))
            print(json.dumps({"pid": pid, "state_dir": str(state_dir)}))
            return 0
        if args.command == "stop":
            stop_daemon(state_dir)
            return 0
        client = ControlClient(state_dir)
        result = _control(parser, client, args)
    except ControlError as exc:
        print(f"lab {args.command}: {exc}", file=sys.stderr)
        return 1 if args.command == "start" else 2
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def _control(parser: argparse.ArgumentParser, client: ControlClient, args: argparse.Namespace) -> Any:
    if args.command == "fault":
        return client.call("fault", **_fault_request(parser, args))
    if args.command == "clock":
        return client.call("clock", seconds=args.advance)
    if args.command == "ca":
        return client.call("ca", request_id=args.request_id, approve=args.decision == "approve")
    if args.command == "mode":
        return client.call("mode", server=args.server, rawdata_only=args.rawdata_only)
    return client.call("dump")


if __name__ == "__main__":
    sys.exit(run())
