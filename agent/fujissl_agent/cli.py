"""The command line: ``enrol``, ``run``, ``serve``, ``status``, ``upgrade``.

Exit codes (docs/agent-protocol.md): 0 done, 1 a failure here or a portal that
cannot be reached, 2 enrolment refused, 3 credential revoked or unknown (enrol
again). Messages for a person go to stderr, one line each; everything goes to
``<state_dir>/logs/agent.log`` as well."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from typing import Any

# Every module is imported now, not when first used: ``upgrade`` may replace
# the single file this process was loaded from.
from . import __version__, certs, challenges, install, keys, livefiles, rollback, steps, tlscheck  # noqa: F401
from . import config as configuration
from .client import Portal, PortalRefused, PortalUnreachable
from .errors import CREDENTIAL_REFUSED, ENROLMENT_REFUSED, FAILURE, OK, AgentError
from .runner import Agent, Server, refusal_error
from .state import Lock, StateDir, add_file_log, now, setup_logging, teardown_logging
from .upgrade import running_zipapp, upgrade

log = logging.getLogger("fujissl_agent")

ENROLMENT_CODES = ("enrolment_code_unknown", "enrolment_code_used", "enrolment_code_expired")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help="the configuration file (default "
                             f"${configuration.ENVIRONMENT_VARIABLE} or "
                             f"{configuration.DEFAULT_PATH})")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="say on stderr what is done, not only what went wrong")
    top = argparse.ArgumentParser(
        prog="fujissl-agent", parents=[common],
        description="Installs this server's certificates from a FujiSSL portal.")
    top.add_argument("--version", action="version", version=f"fujissl-agent {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    enrol = commands.add_parser("enrol", parents=[common],
                                help="enrol this host with an enrolment code from the portal")
    enrol.add_argument("--url", required=True, help="the portal, https://...")
    enrol.add_argument("--code", required=True, help="the enrolment code, ABCD-EFGH-JKLM")
    enrol.add_argument("--ca-file", default="", metavar="FILE",
                       help="the CA certificate(s) that the portal's TLS certificate is "
                            "verified with (default: the system's)")
    commands.add_parser("run", parents=[common], help="check in once and do the work")
    serve = commands.add_parser("serve", parents=[common],
                                help="check in again and again (for a service)")
    serve.add_argument("--max-check-ins", type=int, default=None, help=argparse.SUPPRESS)
    status = commands.add_parser("status", parents=[common],
                                 help="what is installed, and the last check-in")
    status.add_argument("--json", action="store_true", help="as JSON")
    upgrade_parser = commands.add_parser(
        "upgrade", parents=[common], help="replace this single-file agent with the portal's")
    upgrade_parser.add_argument("--path", default="", metavar="FILE",
                                help="the file to replace (default: the running fujissl-agent.pyz)")
    return top


def main(argv: list[str] | None = None) -> None:
    """The console script (and the zipapp's entry point): exits with the code."""
    sys.exit(dispatch(argv))


def dispatch(argv: list[str] | None = None) -> int:
    """Run one command; its exit code."""
    arguments = parser().parse_args(argv)
    handlers = setup_logging(verbose=getattr(arguments, "verbose", False))
    try:
        return COMMANDS[arguments.command](arguments, handlers)
    except AgentError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except PortalUnreachable as exc:
        log.error("the portal cannot be reached: %s", exc)
        return FAILURE
    except PortalRefused as exc:
        error = refusal_error(exc)
        log.error("%s", error)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return FAILURE
    except Exception as exc:  # a bug: one line here, the traceback in the log
        log.error("unexpected error: %s: %s (the traceback is in the log)",
                  type(exc).__name__, exc)
        log.debug("traceback", exc_info=True)
        return FAILURE
    finally:
        teardown_logging(handlers)


def _config(arguments: argparse.Namespace, *, missing_ok: bool = False) -> configuration.Config:
    return configuration.load(configuration.config_path(getattr(arguments, "config", None)),
                              missing_ok=missing_ok)


def _state(config: configuration.Config, handlers: list[logging.Handler]) -> StateDir:
    state = StateDir(config.state_dir)
    state.create()
    add_file_log(handlers, state.logs)
    return state


def _credential(config: configuration.Config, state: StateDir) -> dict[str, Any]:
    credential = state.read_credential()
    if not credential or not credential.get("token") or not credential.get("url"):
        raise AgentError("this host is not enrolled: fujissl-agent enrol --url "
                         "https://<portal> --code <code from the portal>", CREDENTIAL_REFUSED)
    if config.url and config.url != credential["url"]:
        raise AgentError(f"{config.path} names the portal {config.url}, but this host enrolled "
                         f"with {credential['url']}: enrol again, or correct url")
    return credential


# -- the commands -------------------------------------------------------------

def cmd_enrol(arguments: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config = _config(arguments, missing_ok=True)
    url = arguments.url.rstrip("/")
    problem = configuration.url_problem(url)
    if problem:
        raise AgentError(f"--url: {problem}")
    ca_file = arguments.ca_file or config.ca_file
    state = _state(config, handlers)
    with Lock(state.lock_path):
        portal = Portal(url, ca_file=ca_file)
        body = {"code": arguments.code.strip(), "hostname": socket.gethostname(),
                "agent_version": __version__}
        try:
            answer = portal.post("enrol", body, auth=False)
        except PortalUnreachable as exc:
            raise AgentError(f"the portal cannot be reached: {exc}") from None
        except PortalRefused as exc:
            if exc.code in ENROLMENT_CODES or exc.status == 403:
                raise AgentError(f"the portal refused the enrolment: {exc.message}",
                                 ENROLMENT_REFUSED) from None
            raise AgentError(f"the portal refused the enrolment: {exc}") from None
        if not answer.get("token"):
            raise AgentError("the portal's answer to the enrolment has no token")
        host = answer.get("host") or {}
        state.write_credential({
            "url": url, "ca_file": ca_file, "token": answer["token"],
            "host": host, "enrolled_at": now(),
            "interval": answer.get("interval"), "poll_wait": answer.get("poll_wait"),
        })
    message = (f"enrolled as {host.get('name', '?')} (host {host.get('id', '?')}) with {url}; "
               f"the credential is in {state.credential_path}")
    log.info("%s", message)
    print(message)
    return OK


def _agent(arguments: argparse.Namespace,
           handlers: list[logging.Handler]) -> tuple[configuration.Config, StateDir]:
    config = _config(arguments)
    state = _state(config, handlers)
    return config, state


def cmd_run(arguments: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config, state = _agent(arguments, handlers)
    with Lock(state.lock_path):
        agent = Agent(config, state, _credential(config, state))
        try:
            ok = agent.check_in("run", wait=0)
        except PortalUnreachable as exc:
            raise AgentError(f"the portal cannot be reached, nothing was changed: {exc}") from None
        except PortalRefused as exc:
            if exc.code == "rate_limited":
                log.warning("the portal asks to come back later (rate limited); nothing done")
                return OK
            raise refusal_error(exc) from None
    if not ok:
        log.error("some of the work failed; %s says what", os.path.join(state.logs, "agent.log"))
        return FAILURE
    return OK


def cmd_serve(arguments: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config, state = _agent(arguments, handlers)
    with Lock(state.lock_path):
        agent = Agent(config, state, _credential(config, state))
        log.info("serving: checking in with %s", agent.portal.url)
        try:
            Server(agent).run(max_check_ins=arguments.max_check_ins)
        except PortalRefused as exc:
            raise refusal_error(exc) from None
    return OK


def cmd_status(arguments: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config = _config(arguments, missing_ok=True)
    state = StateDir(config.state_dir)
    report = status_report(config, state)
    if arguments.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_status(report))
    return OK


def status_report(config: configuration.Config, state: StateDir) -> dict[str, Any]:
    """What ``status`` shows: the enrolment, the last check-in, and per
    certificate what its files hold now and what the agent last did."""
    try:
        credential = state.read_credential() or {}
    except AgentError:
        credential = {}
    data = state.read_state() if state.path and _exists(state.state_path) else {
        "certificates": {}, "pending_reports": []}
    certificates = {}
    for name in sorted(set(config.certificates) | set(data["certificates"])):
        section = config.certificates.get(name)
        record = dict(data["certificates"].get(name, {}))
        if section is not None:
            path = section.paths.get("certificate") or section.paths.get("fullchain", "")
            record["file"] = path
            record.update(_file_leaf(path))
            installed = record.get("fingerprint", "")
            in_file = record["file_fingerprint"]
            if not installed or (in_file and in_file != installed):
                # Not installed by the agent, or changed since: what the file holds.
                record["fingerprint"] = record["file_fingerprint"]
                record["not_after"] = record["file_not_after"]
                record["changed_since_install"] = bool(installed)
                record["installed_fingerprint"] = installed
            if section.key_on_host:
                record["next_key_waiting"] = keys.pending(state, section) is not None
        else:
            record["not_configured"] = True
        certificates[name] = record
    return {
        "version": __version__, "config": config.path, "state_dir": state.path,
        "portal": credential.get("url", ""), "host": credential.get("host", {}),
        "enrolled_at": credential.get("enrolled_at", ""),
        "last_checkin": data.get("last_checkin", ""),
        "last_checkin_error": data.get("last_checkin_error"),
        "reports_waiting": len(data["pending_reports"]),
        "certificates": certificates,
    }


def _exists(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _file_leaf(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as source:
            der = certs.leaf_der(source.read(1024 * 1024))
    except OSError as exc:
        return {"file_fingerprint": "", "file_not_after": "",
                "file_error": exc.strerror or str(exc)}
    if der is None:
        return {"file_fingerprint": "", "file_not_after": "", "file_error": "no certificate in it"}
    return {"file_fingerprint": certs.sha256(der), "file_not_after": certs.not_after(der)}


def format_status(report: dict[str, Any]) -> str:
    host = report["host"] or {}
    lines = [f"fujissl-agent {report['version']}  config {report['config']}  "
             f"state {report['state_dir']}"]
    if report["portal"]:
        lines.append(f"portal: {report['portal']}  host: {host.get('name', '?')} "
                     f"(id {host.get('id', '?')}), enrolled {report['enrolled_at']}")
    else:
        lines.append("portal: not enrolled (fujissl-agent enrol --url ... --code ...)")
    lines.append(f"last check-in: {report['last_checkin'] or 'never'}")
    if report["last_checkin_error"]:
        error = report["last_checkin_error"]
        lines.append(f"last check-in failed: {error.get('at')}: {error.get('error')}")
    if report["reports_waiting"]:
        lines.append(f"reports waiting for the portal: {report['reports_waiting']}")
    for name, record in report["certificates"].items():
        lines.append(f"[{name}]")
        if record.get("not_configured"):
            lines.append("  no longer in the configuration")
        else:
            lines.append(f"  file:        {record['file']}"
                         + (f" ({record['file_error']})" if record.get("file_error") else ""))
            lines.append(f"  fingerprint: {record.get('fingerprint') or '-'}"
                         + (" (the file was changed since the agent installed "
                            f"{record.get('installed_fingerprint')})"
                            if record.get("changed_since_install") else ""))
            lines.append(f"  not after:   {record.get('not_after') or '-'}")
        if record.get("installed_at"):
            lines.append(f"  installed:   {record['installed_at']} (request "
                         f"{record.get('last_request')})")
        if record.get("last_outcome"):
            lines.append(f"  last outcome: {record['last_outcome']} at "
                         f"{record.get('last_outcome_at')}")
        failure = record.get("last_failure")
        if failure:
            first = (failure.get("error") or "").splitlines()[:1]
            lines.append(f"  last failure: {failure.get('at')} ({failure.get('outcome')}, "
                         f"request {failure.get('request')}): {first[0] if first else ''}")
        if "next_key_waiting" in record:
            lines.append("  next key:    " + ("made, waiting for its certificate"
                                              if record["next_key_waiting"] else "none yet"))
    return "\n".join(lines)


def cmd_upgrade(arguments: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config = _config(arguments, missing_ok=True)
    target = arguments.path or running_zipapp()
    if target:
        target = os.path.realpath(target)  # a link to the agent: replace what it names
    if not target:
        raise AgentError("this fujissl-agent is not the single file fujissl-agent.pyz (it runs "
                         f"from {sys.argv[0] or 'an installed package'}); name the file to "
                         "replace with --path, or upgrade the package with pip")
    state = StateDir(config.state_dir)
    credential = (state.read_credential() if _exists(state.credential_path) else None) or {}
    url = config.url or credential.get("url", "")
    if not url:
        raise AgentError(f"no portal to upgrade from: set url in [agent] of {config.path}, "
                         "or enrol first")
    portal = Portal(url, ca_file=config.ca_file or credential.get("ca_file", ""))
    try:
        message = upgrade(portal, target)
    except PortalUnreachable as exc:
        raise AgentError(f"the portal cannot be reached, nothing was replaced: {exc}") from None
    except PortalRefused as exc:
        raise AgentError(f"the portal refused the download, nothing was replaced: {exc}") \
            from None
    log.info("%s", message)
    print(message)
    return OK


COMMANDS = {"enrol": cmd_enrol, "run": cmd_run, "serve": cmd_serve, "status": cmd_status,
            "upgrade": cmd_upgrade}
