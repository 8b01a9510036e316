"""Settings fail loudly in production and pass Django's deployment checklist."""

from .commands import PRODUCTION, ROOT, bare, manage


def test_production_start_up_stops_with_the_name_of_a_missing_secret(tmp_path):
    for missing in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS"):
        env = {k: v for k, v in PRODUCTION.items() if k != missing}
        result = manage(tmp_path, "check", **env)
        assert result.returncode != 0
        assert f"{missing} is not set" in result.stderr


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_development_generates_its_secrets_under_var_once(tmp_path):
    assert manage(tmp_path, "check", DEBUG="1").returncode == 0
    first = (tmp_path / "secret_key").read_text()
    assert manage(tmp_path, "check", DEBUG="1").returncode == 0
    assert (tmp_path / "secret_key").read_text() == first
    assert (tmp_path / "field_encryption_keys").stat().st_mode & 0o077 == 0


def test_an_unconfigured_checkout_runs_management_commands_on_the_development_defaults(
        tmp_path):
    result = bare(tmp_path, "makemigrations", "--check", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
    if not (ROOT / ".env").exists():  # a .env (make run writes one) configures it instead
        assert "development defaults apply" in result.stderr


def test_a_configured_deployment_never_falls_back_to_the_development_defaults(tmp_path):
    # A database is configured but the secrets are not: that is a mistake to name.
    result = bare(tmp_path, "check", DATABASE_URL=f"sqlite:///{tmp_path}/portal.sqlite3")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def proxy_ssl_header(tmp_path, **env):
    return manage(tmp_path, "shell", "--no-imports", "-c",
                  "from django.conf import settings; "
                  "print(getattr(settings, 'SECURE_PROXY_SSL_HEADER', None))",
                  **PRODUCTION, **env)


def test_the_forwarded_protocol_header_is_trusted_only_when_configured(tmp_path):
    result = proxy_ssl_header(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    result = proxy_ssl_header(tmp_path, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", result.stderr


def test_a_malformed_forwarded_protocol_setting_stops_start_up_naming_it(tmp_path):
    result = proxy_ssl_header(tmp_path, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER='X-Forwarded-Proto'" in result.stderr
