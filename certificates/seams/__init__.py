"""The seams: one module per outside system (a CA over ACME, a host over SSH, a
DNS server, a served TLS port), plus the keys and the one error hierarchy.

They know nothing of the portal's rows or services (`.importlinter` holds them
to it), so that a unit test can replace one seam and nothing else. Importing
this package imports none of them.
"""
