"""certbot's acme library, adjusted: the network keeps the last response (for
Retry-After), goes through the outbound policy and reads the environment once;
the client orders with `replaces` and polls with a short backoff."""

import datetime
import logging
import os
import time
from typing import Any

import josepy as jose
import requests
from acme import client, crypto_util, errors, messages
from cryptography import x509

from certificates.seams.acme_problems import retry_after_seconds
from fujissl_portal import egress

logger = logging.getLogger(__name__)

# ACME answers are small JSON documents and PEM chains; a larger answer is not a CA's.
MAX_RESPONSE_BYTES = 1024 * 1024


class NewOrder(messages.NewOrder):
    # RFC 9773 section 5: the certificate this order replaces.
    replaces: str | None = jose.field("replaces", omitempty=True)


class Network(client.ClientNetwork):
    """Keeps the last response, so that an error's Retry-After can be read, and
    retries a refused nonce more than the library's once."""

    last_response: requests.Response | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every connection, redirects included, through the outbound policy.
        egress.mount(self.session, max_body=MAX_RESPONSE_BYTES)

    # Each round is the library's try + retry. A CA that refuses 5 % of nonces
    # (Pebble's default) would otherwise fail about one issuance in twenty.
    NONCE_ROUNDS = 3

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for round_ in range(self.NONCE_ROUNDS):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as exc:
                if exc.code != "badNonce" or round_ == self.NONCE_ROUNDS - 1:
                    raise
                logger.info("CA refused a nonce twice; trying again")
        raise AssertionError("unreachable")

    def _send_request(self, method: str, url: str, *args: Any,
                      **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response

    def read_environment_once(self, directory_url: str) -> None:
        """What requests would take from the environment (proxies, NO_PROXY, a
        CA bundle in REQUESTS_CA_BUNDLE), read once for this CA rather than at
        every request: those lookups scan os.environ several times a request
        and were over a third of an issuance's CPU."""
        self.session.proxies = requests.utils.get_environ_proxies(directory_url)
        if self.verify_ssl is True:
            # The library declares a bool but hands it to requests, which takes
            # a CA bundle's path as well.
            self.verify_ssl = (os.environ.get("REQUESTS_CA_BUNDLE")  # type: ignore[assignment]
                               or os.environ.get("CURL_CA_BUNDLE") or True)
        self.session.trust_env = False


class Client(client.ClientV2):
    def new_order_replacing(self, csr_pem: bytes, replaces: str | None,
                            profile: str = "") -> messages.OrderResource:
        """`new_order` plus `replaces`; otherwise the library's own steps: its
        identifiers (IP addresses as RFC 8738's "ip") and `profile`
        (draft-ietf-acme-profiles), left out when empty."""
        csr = x509.load_pem_x509_csr(csr_pem)
        dns_names, ips = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name)
                       for name in dns_names]
        identifiers += [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(ip))
                        for ip in ips]
        response = self._post(self.directory["newOrder"],
                              NewOrder(identifiers=identifiers, replaces=replaces,
                                       profile=profile or None))
        return self._order_resource(response, response.headers.get("Location"), csr_pem)

    def poll_authorizations_backoff(self, orderr: messages.OrderResource,
                                    deadline: datetime.datetime) -> messages.OrderResource:
        """The library's poll_authorizations, but the first poll comes after 0.1 s,
        doubling up to 2 s: the library waits a whole second between polls, which is
        most of an issuance against a CA that validates at once."""
        responses = []
        for url in orderr.body.authorizations:
            pause = 0.1
            while True:
                authzr = self._authzr_from_response(self._post_as_get(url), uri=url)
                if authzr.body.status != messages.STATUS_PENDING:
                    responses.append(authzr)
                    break
                if datetime.datetime.now() >= deadline:
                    raise errors.TimeoutError()
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        failed = [a for a in responses if a.body.status != messages.STATUS_VALID]
        if failed:
            raise errors.ValidationError(failed)
        return orderr.update(authorizations=responses)

    def poll_finalization_backoff(self, orderr: messages.OrderResource,
                                  deadline: datetime.datetime) -> str:
        """Waits for a finalized order and returns its full chain: the library's
        poll_finalization, polling after 0.1 s and doubling (it sleeps a second
        first), yet never sooner than a Retry-After the CA sends."""
        pause = 0.1
        while datetime.datetime.now() < deadline:
            time.sleep(pause)
            response = self._post_as_get(orderr.uri)
            body = messages.Order.from_json(response.json())
            if body.status == messages.STATUS_INVALID:
                if body.error is not None:
                    raise errors.IssuanceError(body.error)
                raise errors.Error("The CA abandoned the order without saying why.")
            if body.status == messages.STATUS_VALID and body.certificate is not None:
                return self.download_certificate(body.certificate)
            asked = retry_after_seconds(response)
            pause = max(min(pause * 2, 2.0), asked or 0)
        raise errors.TimeoutError()

    def download_certificate(self, url: str) -> str:
        return self._post_as_get(url).text

    def fetch_order(self, url: str, csr_pem: bytes) -> messages.OrderResource:
        """An order created earlier (a run picked up again after a crash)."""
        return self._order_resource(self._post_as_get(url), url, csr_pem)

    def _order_resource(self, response: requests.Response, uri: str | None,
                        csr_pem: bytes) -> messages.OrderResource:
        body = messages.Order.from_json(response.json())
        authorizations = [self._authzr_from_response(self._post_as_get(url), uri=url)
                          for url in body.authorizations]
        return messages.OrderResource(body=body, uri=uri, authorizations=authorizations,
                                      csr_pem=csr_pem)
