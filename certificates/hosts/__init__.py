"""The host side: enrolment (pinning a host's SSH key), the host queue
(deployment.py: requests and batches, with leases.py and outcomes.py), the
installer (files on the host, config test, reload; rollback.py, and
confirmation.py for the TLS rounds) and what they work on (items.py).

It installs what it is given and never imports renewal: concluding a run is
renewal's work, enqueued as a task of its own (docs/architecture.md).
"""
