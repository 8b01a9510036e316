"""The portal's view of a testbed host: a TargetHost row pointing at its sshd and nginx."""

from django.utils import timezone

from certificates.models import TargetHost


def portal_host(organization, testbed, *, confirmed=True, **fields) -> TargetHost:
    """A TargetHost for ``testbed`` (a ``testbed.hosts.TargetHost``), its key pinned
    and confirmed unless ``confirmed`` is False."""
    defaults = dict(
        name=testbed.name, address=testbed.address, ssh_port=testbed.ssh_port,
        ssh_user=testbed.ssh_user, login_key=testbed.client_key_pem,
        host_key=testbed.host_public_key if confirmed else "",
        host_key_confirmed_at=timezone.now() if confirmed else None,
        private_key_path=str(testbed.private_key_path),
        certificate_path=str(testbed.certificate_path),
        ca_bundle_path=str(testbed.ca_bundle_path),
        fullchain_path=str(testbed.fullchain_path),
        document_root=str(testbed.webroot), backup_dir=str(testbed.backup_dir),
        config_test_command=testbed.config_test_command,
        reload_command=testbed.reload_command,
        tls_check_address=testbed.address, tls_check_port=testbed.tls_port,
        tls_sni_name=testbed.sni_name,
    )
    return TargetHost.objects.create(organization=organization, **{**defaults, **fields})
