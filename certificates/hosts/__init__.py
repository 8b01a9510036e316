"""The host side: enrolment (pinning a host's SSH key), the host queue
(deployment.py: requests, the host lease, batches), the installer (files on
the host, config test, reload, rollback) and the TLS confirmation rounds.

It installs what it is given and never imports renewal: concluding a run is
renewal's work, enqueued as a task of its own (docs/architecture.md).
"""
