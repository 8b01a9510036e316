"""DNS credentials as their own rows. Each certificate's RFC 2136 settings (server,
port, TSIG key) become a credential of its organisation, chosen by the
certificate; certificates with the same settings share one. Its zones are the
certificate's names (a wildcard's base name), so that every name keeps being
written where it was. The old fields go in 0018, once this has run."""

import json

import django.core.validators
import django.db.models.deletion
import fujissl_portal.encryption
from django.db import migrations, models


def _base(name):
    return name[2:] if name.startswith("*.") else name


def certificates_to_credentials(apps, schema_editor):
    Certificate = apps.get_model("certificates", "Certificate")
    DNSCredential = apps.get_model("certificates", "DNSCredential")
    made = {}
    for cert in Certificate.objects.exclude(dns_server="").order_by("pk").iterator():
        if not (cert.tsig_key_name and cert.tsig_secret):
            continue
        key = (cert.organization_id, cert.dns_server, cert.dns_port, cert.tsig_key_name,
               cert.tsig_algorithm or "hmac-sha256", cert.tsig_secret)
        credential = made.get(key)
        if credential is None:
            taken = set(DNSCredential.objects.filter(organization_id=cert.organization_id)
                        .values_list("name", flat=True))
            name = base = f"{cert.dns_server}:{cert.dns_port} ({cert.tsig_key_name})"[:90]
            number = 1
            while name in taken:
                number += 1
                name = f"{base} #{number}"
            credential = made[key] = DNSCredential.objects.create(
                organization_id=cert.organization_id, name=name, kind="rfc2136", zones=[],
                server=cert.dns_server, port=cert.dns_port, tsig_key_name=cert.tsig_key_name,
                tsig_algorithm=cert.tsig_algorithm or "hmac-sha256",
                secrets=json.dumps({"tsig_secret": cert.tsig_secret}))
        names = [_base(n) for n in (cert.sans or [cert.common_name])]
        credential.zones = sorted(set(credential.zones) | set(names))
        credential.save(update_fields=["zones"])
        cert.dns_credentials.add(credential)


def credentials_to_certificates(apps, schema_editor):
    Certificate = apps.get_model("certificates", "Certificate")
    for cert in Certificate.objects.order_by("pk").iterator():
        credential = cert.dns_credentials.filter(kind="rfc2136").order_by("pk").first()
        if credential is None:
            continue
        cert.dns_server, cert.dns_port = credential.server, credential.port
        cert.tsig_key_name, cert.tsig_algorithm = credential.tsig_key_name, credential.tsig_algorithm
        cert.tsig_secret = json.loads(credential.secrets or "{}").get("tsig_secret", "")
        cert.save(update_fields=["dns_server", "dns_port", "tsig_key_name", "tsig_algorithm",
                                 "tsig_secret"])


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_organization_require_mfa'),
        ('certificates', '0019_notification_channels'),
    ]

    operations = [
        migrations.AlterField(
            model_name='certificate',
            name='challenge',
            field=models.CharField(choices=[('http-01', "HTTP-01 (a file in the host's document root)"), ('dns-01', 'DNS-01 (a TXT record written with a DNS credential)')], default='http-01', max_length=8, verbose_name='challenge'),
        ),
        migrations.CreateModel(
            name='DNSCredential',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, verbose_name='name')),
                ('kind', models.CharField(choices=[('rfc2136', 'RFC 2136 with TSIG'), ('lexicon', 'DNS provider with an HTTP API (dns-lexicon)'), ('acme-dns', 'acme-dns')], default='rfc2136', max_length=10, verbose_name='kind')),
                ('zones', models.JSONField(blank=True, default=list, help_text='The zones this credential may change, one per line.', verbose_name='zones')),
                ('server', models.CharField(blank=True, help_text='RFC 2136: the authoritative server that accepts updates. acme-dns: the URL of its API.', max_length=253, verbose_name='server')),
                ('port', models.PositiveIntegerField(default=53, validators=[django.core.validators.MinValueValidator(1, 'Ports are whole numbers from 1 to 65535.'), django.core.validators.MaxValueValidator(65535, 'Ports are whole numbers from 1 to 65535.')], verbose_name='port')),
                ('tsig_key_name', models.CharField(blank=True, max_length=253, verbose_name='TSIG key name')),
                ('tsig_algorithm', models.CharField(blank=True, choices=[('hmac-sha256', 'hmac-sha256'), ('hmac-sha384', 'hmac-sha384'), ('hmac-sha512', 'hmac-sha512'), ('hmac-sha224', 'hmac-sha224'), ('hmac-sha1', 'hmac-sha1'), ('hmac-md5', 'hmac-md5')], default='hmac-sha256', max_length=20, verbose_name='TSIG algorithm')),
                ('provider', models.CharField(blank=True, max_length=40, verbose_name='provider')),
                ('options', models.JSONField(blank=True, default=dict, verbose_name='provider options')),
                ('secrets', fujissl_portal.encryption.EncryptedTextField(blank=True, verbose_name='secret')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='dns_credentials', to='accounts.organization')),
            ],
            options={
                'verbose_name': 'DNS credential',
                'verbose_name_plural': 'DNS credentials',
                'ordering': ['name'],
            },
        ),
        migrations.AddField(
            model_name='certificate',
            name='dns_credentials',
            field=models.ManyToManyField(blank=True, related_name='certificates', to='certificates.dnscredential', verbose_name='DNS credentials'),
        ),
        migrations.AddConstraint(
            model_name='dnscredential',
            constraint=models.UniqueConstraint(fields=('organization', 'name'), name='one_dns_credential_name_per_org'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('key_download', 'Private key downloaded'), ('invitation_sent', 'Invitation sent'), ('invitation_accepted', 'Invitation accepted'), ('invitation_revoked', 'Invitation revoked'), ('role_changed', 'Role changed'), ('member_removed', 'Member removed'), ('mfa_changed', 'Sign-in factors changed'), ('host_created', 'Host added'), ('host_changed', 'Host changed'), ('host_deleted', 'Host deleted'), ('host_key_confirmed', 'Host key confirmed'), ('agent_code_made', 'Agent enrolment code made'), ('agent_revoked', 'Agent credential revoked'), ('ca_account_created', 'CA account added'), ('ca_account_changed', 'CA account changed'), ('ca_account_deleted', 'CA account deleted'), ('top_up', 'Deposit topped up'), ('dns_credential_created', 'DNS credential added'), ('dns_credential_changed', 'DNS credential changed'), ('dns_credential_deleted', 'DNS credential deleted'), ('certificate_created', 'Certificate added'), ('certificate_changed', 'Certificate changed'), ('certificate_deleted', 'Certificate deleted'), ('renewal_forced', 'Renewal forced before its window'), ('token_created', 'API token created'), ('token_revoked', 'API token revoked'), ('webhook_created', 'Webhook added'), ('webhook_changed', 'Webhook changed'), ('webhook_deleted', 'Webhook deleted')], max_length=32, verbose_name='action'),
        ),
        migrations.RunPython(certificates_to_credentials, credentials_to_certificates),
    ]
