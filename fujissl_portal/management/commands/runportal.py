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
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together (development)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr, **options):
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
        try:
            while not stopping:
                exited = [name for name, p in processes.items() if p.poll() is not None]
                if exited:
                    self.stderr.write(f"{', '.join(exited)} stopped; stopping the others.")
                    break
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

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
