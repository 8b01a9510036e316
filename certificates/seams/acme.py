"""The ACME seam: the one module that talks to a CA (RFC 8555), through certbot's
`acme` library, which does the JWS signing, nonces (with one `badNonce` retry),
EAB and polling.

What this module adds on top of the library:
- `replaces` in newOrder (RFC 9773), which the library does not send;
- ACME Renewal Information windows with their Retry-After;
- one re-registration with the same key when the CA no longer knows the
  account (`accountDoesNotExist`, as after a Pebble restart);
- every failure turned into an `AcmeError` that says whether retrying can help
  (transient) or a person must act (permanent), with the CA's problem document
  (acme_failures.py).

It knows nothing of the database: callers pass plain values in and persist what
comes out (the account URL after a registration).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import josepy as jose
from acme import challenges, client, errors, messages
from acme.client import _renewal_info_path_component as ari_certificate_id
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certificates.messages import message
from certificates.seams.acme_failures import errors_of
from certificates.seams.acme_problems import PROBLEM_WORDS as PROBLEM_WORDS
from certificates.seams.acme_problems import AcmeError as AcmeError
from certificates.seams.acme_problems import Problem as Problem
from certificates.seams.acme_problems import describe_problem as describe_problem
from certificates.seams.acme_problems import retry_after_seconds
from certificates.seams.acme_protocol import Client, Network

logger = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "fujissl-portal (certificate renewal portal)"


def new_account_key() -> str:
    """An ACME account key (ECDSA P-256, ES256), as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _jwk_and_alg(key_pem: str) -> tuple[jose.JWK, jose.JWASignature]:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}[key.curve.key_size]
        return jose.JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    raise ValueError("ACME account keys are ECDSA or RSA")


@dataclass
class RenewalWindow:
    """The CA's suggested renewal window (RFC 9773) and when to ask again."""

    start: datetime.datetime
    end: datetime.datetime
    retry_after_seconds: float
    explanation_url: str = ""

    def random_time(self) -> datetime.datetime:
        # A random point spreads a fleet's renewals over the window, as the RFC asks.
        span = max((self.end - self.start).total_seconds(), 0)
        return self.start + datetime.timedelta(seconds=random.uniform(0, span))


class CA:
    """One CA account's conversation with its CA.

    ``account_url`` is empty until the account is registered; read it back after
    any call, since a registration (first use, or the CA having forgotten the
    account) changes it.
    """

    def __init__(self, *, network: Network, directory: messages.Directory,
                 account_key: jose.JWK, account_url: str = "", contact_email: str = "",
                 eab: tuple[str, str] | None = None) -> None:
        """No I/O here: ``connect`` fetches the directory and builds one."""
        self.account_key = account_key
        self.account_url = account_url
        # True once this object registered the account (first use, or again).
        self.registered = False
        self._contact_email = contact_email
        self._eab = eab
        self._net = network
        self._client = Client(directory, network)
        if account_url:
            network.account = messages.RegistrationResource(
                uri=account_url, body=messages.Registration())

    @classmethod
    def connect(cls, *, directory_url: str, account_key_pem: str, account_url: str = "",
                contact_email: str = "", eab_kid: str = "", eab_hmac_key: str = "",
                verify: bool | str = True, timeout: int | float = 30) -> CA:
        """The CA at ``directory_url``, its directory fetched (the one request)."""
        if not directory_url.lower().startswith("https://"):
            raise AcmeError(message("ca.directory_https"),
                            transient=False)
        jwk, alg = _jwk_and_alg(account_key_pem)
        network = Network(jwk, alg=alg, verify_ssl=verify, user_agent=USER_AGENT,
                          timeout=timeout)
        network.read_environment_once(directory_url)
        with errors_of(network):
            try:
                directory = client.ClientV2.get_directory(directory_url, network)
            except (ValueError, jose.DeserializationError) as exc:
                # A web page or other JSON at the URL: a typo, said as such.
                raise AcmeError(message("ca.not_a_directory"), transient=False) from exc
        return cls(network=network, directory=directory, account_key=jwk,
                   account_url=account_url, contact_email=contact_email,
                   eab=(eab_kid, eab_hmac_key) if eab_kid and eab_hmac_key else None)

    @property
    def offers_renewal_info(self) -> bool:
        return "renewalInfo" in self._client.directory.to_partial_json()

    @property
    def directory_resources(self) -> set[str]:
        """The names the directory offers (newNonce, newAccount...), meta aside."""
        return set(self._client.directory.to_partial_json()) - {"meta"}

    @property
    def profiles(self) -> dict[str, str]:
        """The ACME profiles the directory lists (draft-ietf-acme-profiles,
        ``meta.profiles``): name -> description; empty when it lists none."""
        meta = self._client.directory.meta
        listed = meta.profiles if meta is not None else None
        if not isinstance(listed, Mapping):  # the library gives a frozendict
            return {}
        return {str(name)[:64]: str(text)[:500] for name, text in list(listed.items())[:50]}

    @property
    def caa_identities(self) -> list[str]:
        """The names the CA recognises in CAA issue records (RFC 8555, 7.1.1,
        ``meta.caaIdentities``); empty when it lists none."""
        meta = self._client.directory.meta
        listed = meta.caa_identities if meta is not None else None
        if not isinstance(listed, list | tuple):
            return []
        return [str(name)[:253] for name in listed[:20] if isinstance(name, str)]

    @property
    def requires_eab(self) -> bool:
        meta = self._client.directory.meta
        return bool(meta is not None and meta.external_account_required)

    # -- account ---------------------------------------------------------------

    def ensure_account(self) -> str:
        if not self.account_url:
            self.register()
        return self.account_url

    def register(self) -> str:
        """Register (or find again) the account of this key; terms agreed."""
        eab = None
        if self._eab:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self.account_key.public_key(), kid=self._eab[0],
                hmac_key=self._eab[1], directory=self._client.directory)
        registration = messages.NewRegistration.from_data(
            email=self._contact_email or None, terms_of_service_agreed=True,
            external_account_binding=eab)
        self._net.account = None
        with self._errors():
            try:
                self.account_url = self._client.new_account(registration).uri
            except errors.ConflictError as exists:
                # The CA already has an account for this key: use it.
                self.account_url = exists.location
                self._net.account = messages.RegistrationResource(
                    uri=self.account_url, body=messages.Registration())
        self.registered = True
        return self.account_url

    @contextmanager
    def _account_recovery(self) -> Iterator[None]:
        """Registers again, once, when the CA has forgotten the account."""
        try:
            yield
        except messages.Error as exc:
            if exc.code != "accountDoesNotExist":
                raise
            logger.warning("CA no longer knows account %s; registering again", self.account_url)
            self.register()
            raise _RetryOnce from exc

    def _with_account(self, call: Callable[..., T], *args: Any) -> T:
        self.ensure_account()
        with self._errors():
            try:
                with self._account_recovery():
                    return call(*args)
            except _RetryOnce:
                return call(*args)

    # -- orders ----------------------------------------------------------------

    def new_order(self, csr_pem: bytes, *, replaces: str | None = None,
                  profile: str = "") -> messages.OrderResource:
        """An order for the CSR's names; ``profile`` only where the directory
        lists it (callers check: ``profiles``), since a CA that has none may
        reject the field."""
        # `replaces` only where the CA speaks ARI: others may reject an unknown field.
        replaces = replaces if self.offers_renewal_info else None
        if replaces:
            try:
                return self._with_account(self._client.new_order_replacing, csr_pem, replaces,
                                          *([profile] if profile else []))
            except AcmeError as exc:
                if exc.transient:
                    raise
                # The CA may refuse the replacement (already replaced, unknown):
                # an order without it is still the right thing to place.
                logger.warning("order with replaces=%s refused (%s); ordering without",
                               replaces, exc)
        return self._with_account(self._client.new_order_replacing, csr_pem, None,
                                  *([profile] if profile else []))

    def fetch_order(self, url: str, csr_pem: bytes) -> messages.OrderResource:
        return self._with_account(self._client.fetch_order, url, csr_pem)

    def pending_challenges(
        self, order: messages.OrderResource, challenge_type: str,
    ) -> list[tuple[messages.AuthorizationResource, messages.ChallengeBody]]:
        """(authorization, challenge body) for each authorization still pending."""
        wanted = {"http-01": challenges.HTTP01, "dns-01": challenges.DNS01}[challenge_type]
        found = []
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue  # the CA reused a recent validation
            matches = [c for c in authzr.body.challenges if isinstance(c.chall, wanted)]
            if not matches:
                name = authzr.body.identifier.value
                raise AcmeError(
                    message("ca.no_challenge", type=challenge_type, name=name),
                    transient=False)
            found.append((authzr, matches[0]))
        return found

    def http01_resource(self, challenge_body: messages.ChallengeBody) -> tuple[str, str]:
        """(token path under the web root, content to serve)."""
        chall = challenge_body.chall
        return chall.path.lstrip("/"), chall.validation(self.account_key)

    def dns01_record(self, challenge_body: messages.ChallengeBody,
                     name: str) -> tuple[str, str]:
        """(record name, TXT value) for `name` (a wildcard's base name)."""
        chall = challenge_body.chall
        return chall.validation_domain_name(name.removeprefix("*.")), chall.validation(
            self.account_key)

    def answer(self, challenge_body: messages.ChallengeBody) -> None:
        with self._errors():
            self._client.answer_challenge(challenge_body,
                                          challenge_body.chall.response(self.account_key))

    def wait_for_validation(self, order: messages.OrderResource, *,
                            timeout: float) -> messages.OrderResource:
        with self._errors():
            return self._client.poll_authorizations_backoff(order, _deadline(timeout))

    def finalize(self, order: messages.OrderResource, *, timeout: float) -> str:
        """The full chain (leaf first), once the CA has issued."""
        with self._errors():
            # The order as we last saw it (before validation) says "pending":
            # finalize unless it is known to be past that.
            if order.body.status not in (messages.STATUS_VALID, messages.STATUS_PROCESSING):
                try:
                    order = self._client.begin_finalization(order)
                except messages.Error as exc:
                    if exc.code != "orderNotReady":
                        raise
            if order.body.status == messages.STATUS_VALID and order.body.certificate:
                # Issued at once (or before a crash): download it, without the
                # library's first one-second poll.
                return self._client.download_certificate(order.body.certificate)
            return self._client.poll_finalization_backoff(order, _deadline(timeout))

    # -- renewal information (RFC 9773) ---------------------------------------

    def renewal_window(self, certificate_pem: str) -> RenewalWindow | None:
        """The CA's window for renewing this certificate, or None if it offers none."""
        if not self.offers_renewal_info:
            return None
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        url = f"{self._client.directory['renewalInfo']}/{ari_certificate_id(cert)}"
        with self._errors():
            response = self._net.get(url, content_type="application/json")
        info = messages.RenewalInfo.from_json(response.json())
        # RFC 9773 4.3.3: ask again after Retry-After, clamped to one minute ... one
        # day; six hours when the CA does not say.
        retry = retry_after_seconds(response)
        return RenewalWindow(
            start=info.suggested_window.start, end=info.suggested_window.end,
            retry_after_seconds=min(max(retry if retry is not None else 6 * 3600, 60), 86400),
            explanation_url=response.json().get("explanationURL", ""),
        )

    # -- revocation (RFC 8555 section 7.6) ------------------------------------

    def revoke(self, certificate_pem: str, reason: int) -> None:
        """Revokes the certificate, the request signed by the account key (the
        account must have been the one that ordered it, or hold valid
        authorizations for its names). No re-registration when the CA has
        forgotten the account: a new account could not revoke it anyway, and
        the caller may then sign with the certificate's own key instead."""
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        if not self.account_url:
            raise AcmeError(message("ca.cannot_revoke"),
                            transient=False)
        with self._errors():
            self._client.revoke(cert, reason)

    # -- errors ----------------------------------------------------------------

    def _errors(self) -> AbstractContextManager[None]:
        return errors_of(self._net)


class _RetryOnce(Exception):
    """Internal: the account was registered again; repeat the call once."""


def _deadline(seconds: float) -> datetime.datetime:
    # The library compares with naive local time.
    return datetime.datetime.now() + datetime.timedelta(seconds=seconds)


def revoke_with_certificate_key(*, directory_url: str, certificate_pem: str, key_pem: str,
                                reason: int, verify: bool | str = True,
                                timeout: int | float = 30) -> None:
    """Revokes a certificate with a request signed by its own private key (the
    JWS carries that key as ``jwk``, no account): for when the account that
    ordered it is gone. RFC 8555 section 7.6 allows either signer."""
    if not directory_url.lower().startswith("https://"):
        raise AcmeError(message("ca.directory_https"),
                        transient=False)
    jwk, alg = _jwk_and_alg(key_pem)
    network = Network(jwk, alg=alg, verify_ssl=verify, user_agent=USER_AGENT, timeout=timeout)
    network.read_environment_once(directory_url)
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    with errors_of(network):
        directory = client.ClientV2.get_directory(directory_url, network)
        Client(directory, network).revoke(cert, reason)


# -- clients kept between issuances ---------------------------------------------------

# A client per CA account's settings and thread, kept for the next issuance: it
# has the CA's directory, a nonce and a connection already, where a new one
# would fetch the directory, ask for a nonce and shake hands first.
KEEP_CLIENT_SECONDS = 300
_kept = threading.local()


def connect_kept(**settings: Any) -> CA:
    """``CA.connect(**settings)``, or the one this thread connected with the same
    settings less than KEEP_CLIENT_SECONDS ago. Every setting is part of the
    key: an edited account never reuses a client."""
    key = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    kept: dict[str, tuple[float, CA]] | None = getattr(_kept, "by_key", None)
    if kept is None:
        kept = _kept.by_key = {}
    now = time.monotonic()
    entry = kept.get(key)
    if entry is not None and now - entry[0] < KEEP_CLIENT_SECONDS:
        ca = entry[1]
        ca.registered = False  # what this issuance registers, if anything
        return ca
    for old in [k for k, (since, _ca) in kept.items() if now - since >= KEEP_CLIENT_SECONDS]:
        del kept[old]
    ca = CA.connect(**settings)
    kept[key] = (now, ca)
    return ca


def forget_kept_clients() -> None:
    """This thread's kept clients are dropped (tests start each from none)."""
    _kept.by_key = {}
