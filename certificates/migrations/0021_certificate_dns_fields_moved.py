"""The certificate's own RFC 2136 fields, now held by its DNS credential (0017)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0020_dns_credentials'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='certificate',
            name='dns_port',
        ),
        migrations.RemoveField(
            model_name='certificate',
            name='dns_server',
        ),
        migrations.RemoveField(
            model_name='certificate',
            name='tsig_algorithm',
        ),
        migrations.RemoveField(
            model_name='certificate',
            name='tsig_key_name',
        ),
        migrations.RemoveField(
            model_name='certificate',
            name='tsig_secret',
        ),
    ]
