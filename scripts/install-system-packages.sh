#!/bin/sh
# Install the Debian packages behind the test bed's peers, only if one is missing.
# Idempotent: with every binary present it changes nothing and exits 0.
set -eu

# Daemons live in /usr/sbin, which is not on every user's PATH.
PATH="$PATH:/usr/sbin:/sbin"

# binary:package pairs, one for each peer the tests start or call.
NEEDS="pebble:pebble named:bind9 nsupdate:bind9-dnsutils dig:bind9-dnsutils
chromium:chromium pdns_server:pdns-server
sshd:openssh-server nginx:nginx-light msgfmt:gettext
wrk:wrk exim4:exim4-daemon-light dovecot:dovecot-imapd"

missing=""
for need in $NEEDS; do
    binary=${need%%:*}
    package=${need#*:}
    if ! command -v "$binary" >/dev/null 2>&1; then
        echo "missing: $binary (Debian package $package)"
        case " $missing " in *" $package "*) ;; *) missing="$missing $package" ;; esac
    fi
done

# Dovecot's POP3 is a helper of dovecot, not on PATH: look for it.
if [ ! -x /usr/lib/dovecot/pop3-login ]; then
    echo "missing: Dovecot's POP3 (Debian package dovecot-pop3d)"
    missing="$missing dovecot-pop3d"
fi

# PowerDNS's SQLite backend is no binary either: look for its schema.
if [ ! -f /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql ]; then
    echo "missing: PowerDNS's SQLite backend (Debian package pdns-backend-sqlite3)"
    missing="$missing pdns-backend-sqlite3"
fi

# A font is no binary: look for its folder.
if [ ! -d /usr/share/fonts/opentype/ipafont-gothic ]; then
    echo "missing: a Japanese font (Debian package fonts-ipafont-gothic)"
    missing="$missing fonts-ipafont-gothic"
fi

if [ -z "$missing" ]; then
    echo "all test bed binaries present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or ask an administrator:" >&2
    echo "  apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

# Install the whole set, not only what is missing: one apt run, same result.
export DEBIAN_FRONTEND=noninteractive
apt-get update
# chromium drives the browser tests (Playwright); the IPA font makes Japanese
# pages legible in their screenshots; wrk loads the portal in bench/agents.py.
# pdns-server with its SQLite backend: the DNS provider with an HTTP API (lexicon's
# powerdns provider); its postinst cannot start a service here, which is fine.
# Exim and Dovecot: the mail servers whose STARTTLS the endpoint checks speak
# (the tests start their own, on free ports; the packages' services stay off).
apt-get install -y --no-install-recommends pebble nginx-light openssh-server bind9 \
    bind9-dnsutils gettext chromium fonts-ipafont-gothic pdns-server pdns-backend-sqlite3 wrk \
    exim4-daemon-light dovecot-imapd dovecot-pop3d
