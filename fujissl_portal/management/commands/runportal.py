"""Runs the web server, a Celery worker and Celery beat together, for `make run`.

Ctrl-C (or SIGTERM) stops all three; if one of them exits, the others are
stopped too, so a half-running portal never goes unnoticed. Production runs
each as its own service instead (README.md, 'Production').
"""

import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together (development)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--check-addr", action="store_true",
                            help="Only check that the address can be listened on.")

    def handle(self, *args, addr, check_addr=False, **options):
        # Before anything starts: the web server would fail on a taken port
        # while the others ran on, and whatever holds the port would answer
        # the wait below as if the portal did.
        _check_can_listen(addr)
        if check_addr:
            return
        python = sys.executable
        beat_schedule = settings.CELERY_BEAT_SCHEDULE_FILENAME
        commands = {
            "web": [python, "manage.py", "runserver", "--noreload", addr],
            "worker": [python, "-m", "celery", "-A", "fujissl_portal", "worker",
                       "--loglevel=INFO", "--concurrency=2", "-n", "portal@%h",
                       "-Q", settings.CELERY_WORKER_QUEUES],
            "beat": [python, "-m", "celery", "-A", "fujissl_portal", "beat",
                     "--loglevel=INFO", "--schedule", beat_schedule],
        }
        processes = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        # Printed once the web server answers, so it is not lost above the
        # worker's start-up banner.
        self._wait_for_web(addr, processes["web"])
        if processes["web"].poll() is not None:
            _stop(processes)
            raise CommandError(_("The web server stopped before it answered on %(addr)s.")
                               % {"addr": addr})
        self.stdout.write(self.style.SUCCESS(
            f"\nThe portal is running at http://{addr}/ (admin: http://{addr}/admin/).\n"
            "Log in with the administrator printed when it was created; to set a new\n"
            "password: .venv/bin/python manage.py changepassword admin\n"
            "Web server, Celery worker and beat are up; press Ctrl-C to stop all three.\n"
        ))
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exited: list[str] = []
        try:
            while not stopping and not exited:
                exited = [name for name, p in processes.items() if p.poll() is not None]
                time.sleep(0 if exited else 0.5)
        finally:
            _stop(processes)
        if exited:  # not asked to stop: whoever started it must hear of it
            raise CommandError(_("%(names)s stopped; the others were stopped too.")
                               % {"names": ", ".join(exited)})

    @staticmethod
    def _wait_for_web(addr, process, timeout=60):
        host, _, port = addr.rpartition(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), 1):
                    return
            except OSError:
                time.sleep(0.3)


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _check_can_listen(addr: str) -> None:
    """Bind ``addr`` as the web server will, or say plainly why it cannot be."""
    host, _sep, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # As runserver does, so a port left in TIME_WAIT is not called taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        raise CommandError(
            _("Cannot listen on %(addr)s (%(error)s): another program may be using it. "
              "Stop it, or choose another address, e.g. make run ADDR=127.0.0.1:8800.")
            % {"addr": addr, "error": exc.strerror if isinstance(exc, OSError) else exc}
        ) from None
