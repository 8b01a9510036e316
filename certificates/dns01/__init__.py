"""DNS-01 with the organisation's DNS credentials: which credential writes
each name (following the name's CNAME chain), writing and removing TXT records
through the credential's seam, waiting until every authoritative server serves
them, and the credential's test."""
