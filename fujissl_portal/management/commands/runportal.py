"""Runs the web server, a Celery worker and Celery beat together, for `make run`.

Ctrl-C (or SIGTERM) stops all three; if one of them exits, the others are
stopped too, so a half-running portal never goes unnoticed. Production runs
each as its own service instead (README.md, 'Production').
"""

import signal
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
                       "--loglevel=INFO", "--concurrency=2", "-n", "portal@%h"],
            "beat": [python, "-m", "celery", "-A", "fujissl_portal", "beat",
                     "--loglevel=INFO", "--schedule", beat_schedule],
        }
        processes = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(
            f"\nThe portal is running at http://{addr}/ (admin: http://{addr}/admin/).\n"
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
