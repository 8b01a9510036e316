"""DNS-01 validation: updates, provider calls, queries and propagation."""

from .environment import env

# DNS-01 (certificates/dns01/, certificates/seams/dns*.py): the timeout of one DNS
# update, provider call or query, and how long every authoritative server of a
# zone has to serve a new TXT record.
DNS_UPDATE_TIMEOUT = env.float("DNS_UPDATE_TIMEOUT", default=10)
DNS_PROPAGATION_TIMEOUT = env.float("DNS_PROPAGATION_TIMEOUT", default=60)
# Where zones, name servers and CNAME chains are looked up ("host:port" each);
# empty: the system's resolvers. The TXT values themselves are asked of each
# authoritative server directly, on DNS_AUTHORITATIVE_PORT (53 but in tests).
DNS_RESOLVERS = env.list("DNS_RESOLVERS", default=[])
DNS_AUTHORITATIVE_PORT = env.int("DNS_AUTHORITATIVE_PORT", default=53)
