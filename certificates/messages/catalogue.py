"""The catalogue: every message the portal stores, by key, in the words people
read (msgids of the gettext catalogue, so locale/ja translates them).

Keys are stored on rows and read by tools: they stay as they are, even where
the words change. A key whose words need more than one template (the CA's
problem document, a list of lines) has a renderer in RENDERERS instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from .ca_problems import render_problem, render_words

CATALOGUE: dict[str, Promise] = {
    # -- a run as a whole ---------------------------------------------------------
    "run.resumed": _("Taken up again (attempt %(n)d)."),
    "run.time_limit": _("The run took longer than its time limit; it will be tried again."),
    "run.unexpected": _("Unexpected error: %(error)s"),
    "run.deposit_short": _("The deposit is short by %(missing)s."),
    "run.charged": _("Charged %(amount)s."),
    "run.nothing_to_deploy": _("There was nothing to deploy."),
    "run.deploy_failed": _("Deployment failed on %(count)d host(s): %(hosts)s"),
    "run.host_failed": _("%(host)s: %(error)s"),
    "run.fallback_used": _("Renewals go through the fallback CA account %(to)s from now on, "
                           "not %(from)s."),
    # -- issuance -----------------------------------------------------------------
    "issue.account_registered": _("Account registered."),
    "issue.account_registered_again": _("The CA no longer knew the account; registered again "
                                        "with the same key."),
    "issue.account": _("%(what)s %(url)s"),
    "issue.order_resumed": _("Resumed order %(url)s"),
    "issue.profile_missing": _("The CA lists no profile %(profile)s now; ordering with its "
                               "default."),
    "issue.stored": _("serial %(serial)s, valid until %(until)s"),
    "issue.unreadable": _("The CA returned no readable certificate: %(error)s"),
    "issue.other_key": _("The CA returned a certificate for another key than the order's; it "
                         "was not stored."),
    "issue.other_names": _("The CA returned a certificate for other names than the order's "
                           "(ordered: %(ordered)s; issued: %(issued)s); it was not stored."),
    "issue.next_renewal": _("next renewal %(when)s, %(how)s"),
    "issue.ari_window": _("inside the CA's renewal window %(start)s – %(end)s"),
    "issue.by_lifetime": _("when a third of the lifetime remains (half for ten days or less)"),
    "issue.agent_no_csr": _("The agent of %(host)s has not sent the certificate request for "
                            "the key it makes (its last check-in: %(seen)s)."),
    "issue.agent_key": _("Made on %(host)s by its agent; the portal holds only its certificate "
                         "request."),
    # -- the CA -------------------------------------------------------------------
    "ca.http_status": _("The CA answered with HTTP %(status)s."),
    "ca.directory_https": _("The CA's directory URL must start with https://."),
    "ca.not_a_directory": _("The directory URL does not answer with an ACME directory."),
    "ca.no_challenge": _("The CA offers no %(type)s challenge for %(name)s."),
    "ca.cannot_revoke": _("The CA account is not registered: it cannot revoke."),
    "ca.check_directory": _("%(error)s Check the CA account's directory URL."),
    "ca.unreachable": _("The CA could not be reached; the portal retries later."),
    "ca.validation_failed": _("Validation failed."),
    # -- domain proof -------------------------------------------------------------
    "challenge.files": _("%(count)d challenge file(s) in %(dir)s"),
    "challenge.files_removed": _("challenge files removed"),
    "challenge.agent_files": _("%(count)d challenge file(s) written by the agent"),
    "challenge.agent_write_failed": _("The agent of %(host)s could not write the challenge "
                                      "files: %(error)s"),
    "challenge.txt_placed": _("%(count)d TXT record(s): %(where)s"),
    "challenge.txt_not_served": _("%(error)s Served by: %(served)s"),
    "challenge.txt_served": _("%(name)s served by %(servers)s"),
    "challenge.server_after": _("%(server)s after %(seconds).1f s"),
    "challenge.no_credential_left": _("No DNS credential left for %(name)s"),
    "challenge.txt_removed": _("TXT records removed"),
    "challenge.no_credential_for": _("None of the certificate's DNS credentials may change "
                                     "%(target)s (for %(name)s): choose a credential whose "
                                     "zones hold it."),
    "challenge.no_document_root": _("HTTP-01 needs at least one target host with a document "
                                    "root; add one to %(name)s or use DNS-01."),
    "challenge.agent_too_slow": _("The agent of %(host)s did not write the challenge files in "
                                  "time (its last check-in: %(seen)s)."),
    "never": _("never"),
    "endpoint.unreadable": _("The server sent a certificate that cannot be read."),
    "incident.revocation_failed": _("Revocation: %(error)s"),
    "none": _("none"),
    # -- a host -------------------------------------------------------------------
    "deploy.host_key_matches": _("Host key %(fingerprint)s matches the pinned key."),
    "deploy.no_version": _("%(certificate)s has no issued version to deploy yet."),
    "deploy.superseded": _("A newer version (serial %(serial)s) was deployed instead."),
    "install.retry_alone": _("The config test or reload failed with %(count)d certificates "
                             "installed together; each is now installed on its own to find the "
                             "one at fault."),
    "install.leaf": _("Leaf %(fingerprint)s"),
    "install.backup_folder": _("%(error)s Nothing was deployed; fix the backup folder and "
                               "deploy again."),
    "install.same_paths": _("Two of the host's file paths are the same (%(paths)s): each of "
                            "private key, certificate, CA bundle and full chain needs its own "
                            "file."),
    "install.no_command": _("No command configured."),
    "install.config_test_failed": _("The config test “%(command)s” failed with exit status "
                                    "%(status)s:\n%(output)s"),
    "install.reload_failed": _("The reload “%(command)s” failed with exit status %(status)s:\n"
                               "%(output)s"),
    "install.failed": _("Installation failed"),
    # Plural: the form is chosen by the parameter "count".
    "install.backup_saved": ngettext_lazy(
        "%(count)s file saved in %(folder)s",
        "%(count)s files saved in %(folder)s", "count"),
    "install.backups_removed": ngettext_lazy(
        "%(count)s old backup removed",
        "%(count)s old backups removed", "count"),
    "tls.flapping": _("%(address)s:%(port)s served the deployed leaf %(expected)s only now and "
                      "then in %(seconds)s seconds, and another one in between (%(served)s "
                      "last)."),
    "tls.not_served": _("%(address)s:%(port)s still serves the leaf %(served)s instead of the "
                        "deployed %(expected)s after %(seconds)s seconds."),
    "rollback.not_reloaded": _("they were not reloaded, since the files of another certificate "
                               "could not all be put back"),
    "rollback.reload_failed": _("the reload after them failed: %(error)s"),
    "rollback.link_failed": _("Could not link %(backup)s back to %(path)s."),
    "rollback.done": _("The previous files are back in place (saved in %(folder)s)."),
    "rollback.partial": _("%(missing)s could not be put back; %(back)s could. The previous "
                          "files are saved in %(folder)s."),
    "rollback.path_error": _("%(path)s (%(error)s)"),
    "rollback.failed": _("%(cause)s\nThe rollback failed: %(detail)s"),
    "rollback.previous_served": _("The previous files are back in place (saved in %(folder)s), "
                                  "but %(reason)s. The host serves the previous certificate "
                                  "(%(previous)s), so nothing changed for its clients."),
    "rollback.previous_unknown": _("The previous files are back in place (saved in "
                                   "%(folder)s), but %(reason)s, and no previous certificate "
                                   "could be read from the backup to check what the host "
                                   "serves."),
    "rollback.previous_not_served": _("The previous files are back in place (saved in "
                                      "%(folder)s), but %(reason)s, and the host does not "
                                      "serve the previous certificate (%(previous)s): "
                                      "%(served)s"),
    "rollback.serves": _("it serves %(fingerprint)s."),
    # -- the seams ------------------------------------------------------------------
    "tls.outbound_refused": _("The TLS check address %(address)s is not allowed by the "
                              "portal's outbound policy: enter the server's public address."),
    "tls.no_handshake": _("No TLS handshake with %(address)s:%(port)s (SNI %(sni)s): check "
                          "that the server listens there and serves this name over TLS."),
    "tls.no_certificate": _("%(address)s:%(port)s (SNI %(sni)s) completed a TLS handshake "
                            "without a certificate."),
    "ssh.outbound_refused": _("%(where)s is not allowed by the portal's outbound policy: enter "
                              "the host's public address."),
    "ssh.incompatible": _("%(where)s offers no SSH algorithm the portal accepts: %(error)s"),
    "ssh.unreachable": _("Could not reach %(where)s over SSH: check the address and port, and "
                         "that the SSH server runs and accepts connections from the portal."),
    "ssh.key_not_confirmed": _("The SSH host key of %(host)s has not been confirmed by an "
                               "administrator, so the portal does not connect to it; enrol the "
                               "host and confirm its fingerprint first."),
    "ssh.login_key_unusable": _("The SSH login key of %(host)s cannot be used: %(error)s"),
    "ssh.login_refused": _("%(where)s refused the login of %(user)s with the portal's key: "
                           "%(error)s"),
    "ssh.host_key_changed": _("The SSH host key of %(host)s has changed: the pinned key is "
                              "%(pinned)s, but the server presented %(presented)s. Nothing was "
                              "written. If the change is expected, enrol the host again and "
                              "confirm the new fingerprint."),
    "ssh.do.open_sftp": _("open SFTP on"),
    "ssh.broke_off": _("The SSH connection to %(host)s broke off while trying to %(action)s "
                       "%(path)s: %(error)s"),
    "ssh.file_error": _("Could not %(action)s %(path)s on %(host)s: %(error)s"),
    "ssh.do.inspect": _("inspect"),
    "ssh.do.list": _("list"),
    "ssh.do.create_folder": _("create the folder"),
    "ssh.symlink": _("%(path)s on %(host)s is a symbolic link, which the portal does not "
                     "follow: it did not make it, and it may lead out of the folder. Replace "
                     "the link with a real folder."),
    "ssh.not_a_folder": _("%(path)s on %(host)s is not a folder; the portal needs a folder "
                          "there."),
    "ssh.writable": _("%(path)s on %(host)s may be written by its group or by others (mode "
                      "%(mode)04o), who could plant links in it; allow writing by its owner "
                      "only (for example chmod 0700)."),
    "ssh.do.read": _("read"),
    "ssh.do.write": _("write"),
    "ssh.do.chmod": _("set the mode of"),
    "ssh.do.link": _("link"),
    "ssh.chown_failed": _("Could not give %(path)s on %(host)s the owner %(spec)s: %(output)s"),
    "ssh.do.remove": _("remove"),
    "ssh.do.remove_folder": _("remove the folder"),
    "ssh.do.move": _("move into place"),
    "ssh.command_timeout": _("“%(command)s” on %(host)s did not finish within %(seconds)s "
                             "seconds."),
    "ssh.broke_off_running": _("The SSH connection to %(host)s broke off while running "
                               "“%(command)s”: %(error)s"),
    "tls.outbound_refused_any": _("The address %(address)s is not allowed by the portal's "
                                  "outbound policy."),
    "tls.no_handshake_short": _("No TLS handshake with %(address)s:%(port)s (SNI %(sni)s)."),
    # -- an agent host's report --------------------------------------------------
    "agent.portal_sees_other": _("The agent installed the new certificate and saw it served, "
                                 "but the portal sees another certificate at "
                                 "%(address)s:%(port)s (SHA-256 %(served)s)."),
    "agent.no_check_address": _("The portal has no TLS check address for this host: the "
                                "agent's own check is the proof that the new certificate is "
                                "served."),
    "agent.portal_unreachable": _("The portal could not reach the server (%(error)s): the "
                                  "agent's own check is the proof that the new certificate is "
                                  "served."),
    "agent.portal_sees_new": _("The portal sees the new certificate served at "
                               "%(address)s:%(port)s."),
    "agent.portal_sees_other_step": _("The portal sees another certificate at "
                                      "%(address)s:%(port)s."),
    "agent.not_taken_up": _("The agent of %(host)s did not take the new certificate up within "
                            "%(minutes)d minutes (its last check-in: %(seen)s)."),
    "agent.failed": _("failed"),
    # -- DNS, DNS providers, acme-dns, the outbound policy ------------------------
    "dns.outbound_refused": _("The DNS server %(server)s is not allowed by the portal's "
                              "outbound policy: enter the zone's public authoritative server."),
    "dns.unresolvable": _("The DNS server %(server)s cannot be resolved: %(error)s"),
    "dns.not_authoritative": _("The DNS server %(server)s is not authoritative for %(name)s: "
                               "check the certificate's DNS server."),
    "dns.update_refused": _("The DNS server %(server)s refused the update of %(name)s "
                            "(%(rcode)s): check the TSIG key name, algorithm and secret, and "
                            "the zone's update policy."),
    "dns.tsig_rejected": _("The DNS server %(server)s rejected the TSIG signature for %(name)s "
                           "(%(error)s): check the key name, algorithm and secret."),
    "dns.unreachable": _("The DNS server %(server)s:%(port)s could not be reached: check its "
                         "address and port, and that it accepts DNS over TCP from the portal."),
    "lookup.no_zone": _("No zone holds %(name)s: check the name."),
    "lookup.zone_failed": _("The zone of %(name)s could not be looked up (%(error)s)."),
    "lookup.nameservers_failed": _("The name servers of %(zone)s could not be looked up "
                                   "(%(error)s)."),
    "lookup.address_failed": _("The address of %(server)s could not be looked up (%(error)s)."),
    "lookup.no_nameserver_address": _("The zone %(zone)s has no name server with an address."),
    "lookup.outbound_refused": _("The name server %(server)s is not allowed by the portal's "
                                 "outbound policy."),
    "lookup.no_answer": _("The name server %(server)s did not answer for %(name)s (%(error)s)."),
    "lookup.cname_loop": _("The CNAME chain of %(name)s loops or is longer than %(max)s names: "
                           "%(chain)s."),
    "lookup.not_served": _("%(servers)s did not serve the TXT record at %(name)s within "
                           "%(seconds)s s."),
    "provider.not_offered": _("The DNS provider %(provider)s is not offered by this portal."),
    "provider.auth_refused": _("%(provider)s refused the credential's authentication for "
                               "%(zone)s: check its API key or token (%(detail)s)."),
    "provider.zone_unknown": _("%(provider)s does not know the zone %(zone)s or refused the "
                               "record: check the credential's zones (%(detail)s)."),
    "provider.error": _("%(provider)s answered with an error for %(zone)s (%(detail)s)."),
    "provider.unreachable": _("%(provider)s could not be reached for %(zone)s (%(detail)s)."),
    "provider.failed": _("%(provider)s failed for %(zone)s (%(detail)s)."),
    "provider.url_refused": _("The DNS provider's address %(url)s is refused: use https (plain "
                              "http only to a host the portal's outbound policy names)."),
    "acmedns.field_missing": _("The acme-dns server %(server)s answered the registration "
                               "without %(field)s."),
    "acmedns.url_refused": _("The acme-dns server %(server)s is refused: use https (plain http "
                             "only to a host the portal's outbound policy names)."),
    "acmedns.unreachable": _("The acme-dns server %(server)s could not be reached (%(error)s)."),
    "acmedns.refused": _("The acme-dns server %(server)s refused the registration's credentials."),
    "acmedns.status": _("The acme-dns server %(server)s answered %(status)s: %(detail)s"),
    "acmedns.not_json": _("The acme-dns server %(server)s did not answer with JSON."),
    "egress.refused": _("The address of %(host)s is not allowed by the portal's outbound policy."),
    "egress.too_large": _("The answer from %(host)s was larger than %(kb)s KB, more than the "
                          "portal reads."),
    "acmedns.not_registered": _("%(name)s is not a name this acme-dns credential registered: "
                                "point the _acme-challenge CNAME at the name the certificate's "
                                "page shows."),
    # -- revocation ---------------------------------------------------------------
    "revoke.still_served": _("This version is still served by %(hosts)s. Revoke it once its "
                             "replacement is served, or force it for a key compromise (the "
                             "replacement then starts at once)."),
    "revoke.ca_refused": _("The CA did not revoke it: %(error)s"),
    "revoke.no_key": _("The CA refused the account's request (%(error)s), and this version's "
                       "key was made on the server by its agent: the portal does not have it, "
                       "so only the account can sign the revocation."),
    "revoke.not_registered": _("This version's key was made on the server by its agent and the "
                               "portal does not have it: only the CA account can sign the "
                               "revocation, and it is not registered."),
    "revoke.already": _("This version was revoked already."),
    "revoke.force_needs_compromise": _("Only a key compromise forces the revocation of a "
                                       "version that is still served."),
    # -- discovery ----------------------------------------------------------------
    "discovery.refused_addresses": _("Not allowed by the portal's outbound policy, or not "
                                     "resolvable: %(addresses)s."),
}


def _lines(params: dict[str, Any], value: Callable[[Any], Any]) -> str:
    """Several messages, one a line (an error, then what the rollback did)."""
    return "\n".join(str(value(line)) for line in params.get("lines") or [])


RENDERERS: dict[str, Callable[[dict[str, Any], Callable[[Any], Any]], str]] = {
    "ca.problem": render_problem,
    "ca.problem_words": render_words,
    "lines": _lines,
}
