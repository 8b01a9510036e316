"""Certificates the portal did not issue: import, endpoint monitoring, discovery
and adoption (issue 16). The rows live in `certificates/models/inventory.py`."""
