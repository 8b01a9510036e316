"""The settings of the portal's peers and features, one plain module each,
imported by name by fujissl_portal/settings.py (which says why)."""
