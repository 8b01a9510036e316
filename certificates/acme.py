"""The ACME seam: the one module that talks to a CA (RFC 8555), through certbot's
`acme` library, which does the JWS signing, nonces (with one `badNonce` retry),
EAB and polling.

What this module adds on top of the library:
- `replaces` in newOrder (RFC 9773), which the library does not send;
- ACME Renewal Information windows with their Retry-After;
- one re-registration with the same key when the CA no longer knows the
  account (`accountDoesNotExist`, as after a Pebble restart);
- every failure turned into an `AcmeError` that says whether retrying can help
  (transient) or a person must act (permanent), with the CA's problem document.

It knows nothing of the database: callers pass plain values in and persist what
comes out (the account URL after a registration).
"""

import datetime
import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from acme.client import _renewal_info_path_component as ari_certificate_id
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fujissl_portal import egress

from .errors import FailureKind, PortalError

logger = logging.getLogger(__name__)

T = TypeVar("T")
# An RFC 7807 problem document, as the CA sent it (subproblems included).
Problem = dict[str, Any]

USER_AGENT = "fujissl-portal (certificate renewal portal)"
# ACME answers are small JSON documents and PEM chains; a larger answer is not a CA's.
MAX_RESPONSE_BYTES = 1024 * 1024

# Retrying can help: the CA was busy or asked us to slow down.
TRANSIENT_CODES = {"serverInternal", "rateLimited", "badNonce"}

# Problem types in words for people (the CA's own detail follows them).
PROBLEM_WORDS = {
    "unauthorized": _("The CA could not confirm control of the name: the challenge "
                      "response was missing or wrong."),
    "incorrectResponse": _("The challenge response the CA found was not the expected one."),
    "connection": _("The CA could not connect to the server to check the challenge."),
    "dns": _("The CA's DNS lookup for the name failed."),
    "tls": _("A TLS error occurred while the CA checked the challenge."),
    "caa": _("The domain's CAA records forbid this CA from issuing for it."),
    "rejectedIdentifier": _("The CA will not issue certificates for this name."),
    "badCSR": _("The CA refused the certificate request (CSR)."),
    "rateLimited": _("The CA's rate limit was reached; the portal retries later."),
    "serverInternal": _("The CA had an internal error; the portal retries later."),
    "badNonce": _("The CA kept refusing the request's anti-replay nonce; the portal "
                  "retries later."),
    "externalAccountRequired": _("The CA requires External Account Binding: enter the EAB "
                                 "key ID and HMAC key of the CA account."),
    "unauthorizedAccount": _("The CA refused the account."),
    "accountDoesNotExist": _("The CA does not know the account."),
    "malformed": _("The CA found the request malformed."),
    "timeout": _("The CA did not finish in time; the portal retries later."),
    "network": _("The CA could not be reached; the portal retries later."),
}


class AcmeError(PortalError):
    """A failure talking to the CA, sorted for the retry policy; ``retry_after``
    is when the CA asked us to come back (rateLimited, 503), if it said."""

    kind = FailureKind.CA_ERROR

    def __init__(self, message: object, *, transient: bool,
                 problem: Problem | None = None,
                 retry_after: datetime.datetime | None = None,
                 kind: FailureKind | None = None) -> None:
        # transient is required here: every failure at the CA must be sorted.
        super().__init__(message, transient=transient, problem=problem,
                         retry_after=retry_after, kind=kind)


def describe_problem(problem: Problem | None) -> str:
    """The problem document in words: ours for its type, then the CA's detail."""
    if not problem:
        return ""
    code = problem.get("type", "").rsplit(":", 1)[-1]
    parts = [str(PROBLEM_WORDS.get(code, _("The CA reported a problem.")))]
    if problem.get("detail"):
        parts.append(problem["detail"])
    for sub in problem.get("subproblems") or []:
        name = (sub.get("identifier") or {}).get("value", "")
        parts.append(f"{name}: {sub.get('detail', '')}".strip(": "))
    return " ".join(parts)


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


class _NewOrder(messages.NewOrder):
    # RFC 9773 section 5: the certificate this order replaces.
    replaces: str | None = jose.field("replaces", omitempty=True)


class _Network(client.ClientNetwork):
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


class _Client(client.ClientV2):
    def new_order_replacing(self, csr_pem: bytes,
                            replaces: str | None) -> messages.OrderResource:
        """`new_order` plus `replaces`; otherwise the library's own steps."""
        csr = x509.load_pem_x509_csr(csr_pem)
        dns_names, _ips = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name)
                       for name in dns_names]
        response = self._post(self.directory["newOrder"],
                              _NewOrder(identifiers=identifiers, replaces=replaces))
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


class CA:
    """One CA account's conversation with its CA.

    ``account_url`` is empty until the account is registered; read it back after
    any call, since a registration (first use, or the CA having forgotten the
    account) changes it.
    """

    def __init__(self, *, directory_url: str, account_key_pem: str, account_url: str = "",
                 contact_email: str = "", eab_kid: str = "", eab_hmac_key: str = "",
                 verify: bool | str = True, timeout: int | float = 30) -> None:
        if not directory_url.lower().startswith("https://"):
            raise AcmeError(_("The CA's directory URL must start with https://."),
                            transient=False)
        jwk, alg = _jwk_and_alg(account_key_pem)
        self.account_key = jwk
        self.account_url = account_url
        # True once this object registered the account (first use, or again).
        self.registered = False
        self._contact_email = contact_email
        self._eab = (eab_kid, eab_hmac_key) if eab_kid and eab_hmac_key else None
        self._net = _Network(jwk, alg=alg, verify_ssl=verify, user_agent=USER_AGENT,
                             timeout=timeout)
        self._net.read_environment_once(directory_url)
        with self._errors():
            directory = client.ClientV2.get_directory(directory_url, self._net)
        self._client = _Client(directory, self._net)
        if account_url:
            self._net.account = messages.RegistrationResource(
                uri=account_url, body=messages.Registration())

    @property
    def offers_renewal_info(self) -> bool:
        return "renewalInfo" in self._client.directory.to_partial_json()

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

    def new_order(self, csr_pem: bytes, *,
                  replaces: str | None = None) -> messages.OrderResource:
        # `replaces` only where the CA speaks ARI: others may reject an unknown field.
        replaces = replaces if self.offers_renewal_info else None
        if replaces:
            try:
                return self._with_account(self._client.new_order_replacing, csr_pem, replaces)
            except AcmeError as exc:
                if exc.transient:
                    raise
                # The CA may refuse the replacement (already replaced, unknown):
                # an order without it is still the right thing to place.
                logger.warning("order with replaces=%s refused (%s); ordering without",
                               replaces, exc)
        return self._with_account(self._client.new_order_replacing, csr_pem, None)

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
                    _("The CA offers no %(type)s challenge for %(name)s.")
                    % {"type": challenge_type, "name": name}, transient=False)
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

    # -- errors ----------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except AcmeError:
            raise
        except messages.Error as exc:
            raise self._from_problem(exc) from exc
        except errors.IssuanceError as exc:
            raise self._from_problem(exc.error) from exc
        except errors.ValidationError as exc:
            problem = _validation_problem(exc.failed_authzrs)
            raise AcmeError(describe_problem(problem), transient=False, problem=problem) from exc
        except (errors.TimeoutError, errors.NonceError) as exc:
            code = "timeout" if isinstance(exc, errors.TimeoutError) else "badNonce"
            raise AcmeError(str(PROBLEM_WORDS[code]), transient=True) from exc
        except errors.ClientError as exc:
            response = exc.args[0] if exc.args and hasattr(exc.args[0], "status_code") else None
            status = getattr(response, "status_code", 0)
            raise AcmeError(_("The CA answered with HTTP %(status)s.") % {"status": status},
                            transient=status >= 500 or status == 0,
                            retry_after=self._retry_after()) from exc
        except (egress.Refused, egress.ResponseTooLarge) as exc:
            raise AcmeError(_("%(error)s Check the CA account's directory URL.")
                            % {"error": exc}, transient=False, kind=exc.kind) from exc
        except requests.RequestException as exc:
            # Refused, timed out or dropped: one message, so that a directory URL
            # cannot probe what listens on which port; the log has the detail.
            logger.info("ACME request failed: %r", exc)
            raise AcmeError(str(PROBLEM_WORDS["network"]), transient=True) from exc

    def _from_problem(self, error: messages.Error) -> AcmeError:
        problem = _problem_dict(error)
        status = getattr(self._net.last_response, "status_code", 0)
        transient = error.code in TRANSIENT_CODES or status >= 500
        return AcmeError(describe_problem(problem), transient=transient, problem=problem,
                         retry_after=self._retry_after() if transient else None)

    def _retry_after(self) -> datetime.datetime | None:
        response = self._net.last_response
        seconds = retry_after_seconds(response) if response is not None else None
        return timezone.now() + datetime.timedelta(seconds=seconds) if seconds is not None else None


class _RetryOnce(Exception):
    """Internal: the account was registered again; repeat the call once."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After (seconds or an HTTP date) as seconds from now, or None.

    Parsed here because the library mixes naive local and naive UTC times.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)


def _deadline(seconds: float) -> datetime.datetime:
    # The library compares with naive local time.
    return datetime.datetime.now() + datetime.timedelta(seconds=seconds)


def _problem_dict(error: messages.Error) -> Problem:
    problem: Problem = {"type": error.typ, "detail": error.detail or ""}
    if error.identifier is not None:
        problem["identifier"] = {"type": error.identifier.typ.name,
                                 "value": error.identifier.value}
    if error.subproblems:
        problem["subproblems"] = [_problem_dict(sub) for sub in error.subproblems]
    return problem


def _validation_problem(failed_authzrs: list[messages.AuthorizationResource]) -> Problem:
    """One problem document for failed validations, a subproblem per name."""
    subproblems = []
    for authzr in failed_authzrs:
        for chall in authzr.body.challenges:
            if chall.error is not None:
                sub = _problem_dict(chall.error)
                sub["identifier"] = {"type": "dns", "value": authzr.body.identifier.value}
                subproblems.append(sub)
    first = subproblems[0] if subproblems else {"type": messages.ERROR_PREFIX + "unauthorized"}
    return {"type": first["type"], "detail": str(_("Validation failed.")),
            "subproblems": subproblems}
