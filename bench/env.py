"""The benchmarks' own environment: PostgreSQL database ``portal_bench``, Redis
db 10, ``PORTAL_VAR_DIR=var/bench``, production settings (DEBUG off).

Import ``configure()`` before anything touches Django settings; worker
processes get the same variables from ``worker_environment()``.
"""

import os
import platform
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"
REDIS_URL = "redis://127.0.0.1:6379/10"


def _secret(name: str, make) -> str:
    path = VAR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def worker_environment() -> dict[str, str]:
    """What every process of a benchmark runs with (workers included)."""
    from cryptography.fernet import Fernet

    VAR.mkdir(parents=True, exist_ok=True)
    return {
        "DJANGO_SETTINGS_MODULE": "fujissl_portal.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DATABASE_URL),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", REDIS_URL),
        "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", REDIS_URL),
        "PORTAL_VAR_DIR": "var/bench",
        "DEBUG": "0",
        "SECRET_KEY": _secret("secret_key", lambda: secrets.token_urlsafe(50)),
        "FIELD_ENCRYPTION_KEYS": _secret("field_encryption_keys",
                                         lambda: Fernet.generate_key().decode()),
        "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "EMAIL_URL": "consolemail://",
        "LOG_LEVEL": "WARNING",
        # Production settings allow no internal address, and the testbed's CA
        # and hosts are all on loopback.
        "OUTBOUND_ALLOW": "127.0.0.0/8",
    }


def configure(*, migrate: bool = True, static: bool = False) -> None:
    """Point this process at the bench database (created and migrated if need be)."""
    os.environ.update(worker_environment())
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    _create_database()
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    if static:  # DEBUG is off: pages need the hashed manifest, as in production
        from django.core.management import call_command

        call_command("collectstatic", verbosity=0, interactive=False)


def _database_name(url: str) -> str | None:
    return url.rsplit("/", 1)[1] if url.startswith("postgres") else None


def _create_database() -> None:
    name = _database_name(os.environ["DATABASE_URL"])
    if name is None:
        return
    listed = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
                             f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                            capture_output=True, text=True, check=True)
    if listed.stdout.strip() != "1":
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)


def drop_database() -> None:
    """The bench database dropped, so that the next ``configure()`` creates it
    and migrates it from nothing with the migrations of the code that runs it
    (a schema left by another revision may not fit)."""
    name = _database_name(os.environ.get("BENCH_DATABASE_URL", DATABASE_URL))
    if name is not None:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists",
                        "--force", name], check=True)


def reset_database() -> None:
    """Every table emptied: each benchmark starts from nothing."""
    from django.core.management import call_command

    call_command("flush", verbosity=0, interactive=False)


def machine() -> str:
    """One line naming the machine, for the figures."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, load average {load}, "
            f"Python {platform.python_version()}, {platform.platform()}")
