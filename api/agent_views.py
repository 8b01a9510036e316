"""The agent protocol's endpoints (docs/agent-protocol.md), under /agent/v1/.

A credential names one host: every view acts on ``request.auth.host`` only, so
an agent reads its own host's work and writes its own host's reports, nothing
else. Refusals have the protocol's shape, {"error": {"code", "message"}}, which
the agent acts on; they are part of the OpenAPI schema with the rest.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from functools import cache as once

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import Http404, HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import authentication, exceptions, serializers, status
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from certificates.hosts import agents

from .parsers import BoundedJSONParser
from .schema import AgentAutoSchema, AgentErrorSerializer

TOKEN_TAG = "agent"
# Row ids as the database holds them: anything else is refused as bad input.
ROW_ID = {"min_value": 1, "max_value": 2**31 - 1}


class AgentAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer fja_<prefix>_<secret>`: the agent of one host."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            raise _refusal(agents.AgentRefused("credential_unknown", str(_(
                "Send the agent's credential as “Authorization: Bearer <token>”.")), status=401))
        try:
            agent = agents.authenticate(header[1].decode("ascii"))
        except UnicodeDecodeError as exc:
            raise _refusal(agents.AgentRefused("credential_unknown", str(_(
                "The credential holds invalid characters.")), status=401)) from exc
        except agents.AgentRefused as exc:
            raise _refusal(exc) from exc
        return None, agent

    def authenticate_header(self, request):
        return 'Bearer realm="agent"'


class RefusedByPortal(exceptions.APIException):
    """An AgentRefused on its way through DRF's exception handling."""

    def __init__(self, refused: agents.AgentRefused) -> None:
        super().__init__(refused.message, code=refused.code)
        self.status_code = refused.status
        self.refused = refused


def _refusal(refused: agents.AgentRefused) -> RefusedByPortal:
    return RefusedByPortal(refused)


class IsAgent(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, agents.Agent)


class AgentThrottle(BaseThrottle):
    """AGENT_THROTTLE_RATE per host (its credential); enrolment per address.

    A counter per fixed window, one INCR in the cache for most requests: DRF's
    own throttle reads and writes the list of every request's time, which cost
    more than the rest of an idle check-in (bench/agents.py)."""

    def allow_request(self, request, view):
        rate = (settings.AGENT_ENROL_THROTTLE_RATE if request.auth is None
                else settings.AGENT_THROTTLE_RATE)
        self.limit, self.window = SimpleRateThrottle.parse_rate(None, rate)
        now = time.time()
        started = int(now // self.window * self.window)
        if isinstance(request.auth, agents.Agent):
            ident = f"host-{request.auth.host_id}"
        else:
            ident = f"enrol-{self.get_ident(request)}"
        count = _count(f"agent-throttle:{ident}:{started}", self.window + 1)
        self.wait_seconds = started + self.window - now
        return count <= self.limit

    def wait(self):
        return self.wait_seconds


def _redis_client():
    """A Redis client for the counters, when the cache is Redis; kept on the
    cache object (one per thread, as Django keeps caches).

    Django's Redis cache builds a client object on every call and counts with
    two round trips (EXISTS, then INCR); at thousands of check-ins a second
    that was a tenth of a check-in's CPU. The client shares the cache's
    connection pool, which redis-py makes anew in a forked process."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    client = getattr(backend, "_agent_counter_client", None)
    if client is None:
        client = backend._cache.get_client(write=True)  # noqa: SLF001
        backend._agent_counter_client = client  # type: ignore[attr-defined]
    return client


def _count(key: str, ttl: int) -> int:
    """Adds one to the counter ``key`` (made with ``ttl`` seconds to live) and
    returns it: one round trip to Redis; any other cache through Django's API."""
    client = _redis_client()
    if client is not None:
        pipeline = client.pipeline(transaction=False)
        full_key = cache.make_and_validate_key(key)
        pipeline.incr(full_key)
        pipeline.expire(full_key, ttl, nx=True)
        return int(pipeline.execute()[0])
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request
        return 1 if cache.add(key, 1, ttl) else cache.incr(key)


ERROR = AgentErrorSerializer


class AgentView(APIView):
    schema = AgentAutoSchema()
    # The agent speaks JSON only; form bodies are not part of the protocol.
    parser_classes = [BoundedJSONParser]
    authentication_classes = [AgentAuthentication]
    permission_classes = [IsAgent]
    throttle_classes = [AgentThrottle]

    def handle_exception(self, exc):
        if isinstance(exc, RefusedByPortal):
            return _error(exc.refused.code, exc.refused.message, exc.refused.status)
        if isinstance(exc, agents.AgentRefused):
            return _error(exc.code, exc.message, exc.status)
        if isinstance(exc, exceptions.Throttled):
            response = _error("rate_limited", str(exc.detail), status.HTTP_429_TOO_MANY_REQUESTS)
            if exc.wait is not None:
                response["Retry-After"] = str(int(exc.wait) + 1)
            return response
        if isinstance(exc, exceptions.ValidationError):
            return _error("invalid", _flatten(exc.detail), status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, exceptions.ParseError):
            return _error("invalid", str(exc.detail), status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)

    @property
    def agent(self) -> agents.Agent:
        return self.request.auth

    @property
    def host(self):
        return self.request.auth.host

    def valid(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _error(code: str, message: str, status_code: int) -> Response:
    return Response({"error": {"code": code, "message": str(message)}}, status=status_code)


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


# -- enrolment ------------------------------------------------------------------------


class EnrolIn(serializers.Serializer):
    code = serializers.CharField(max_length=64)
    hostname = serializers.CharField(max_length=253, required=False, allow_blank=True)
    agent_version = serializers.CharField(max_length=40, required=False, allow_blank=True)


class EnrolOut(serializers.Serializer):
    host = inline_serializer("AgentHost", {"id": serializers.IntegerField(),
                                           "name": serializers.CharField()})
    token = serializers.CharField()
    interval = serializers.IntegerField()
    poll_wait = serializers.IntegerField()


class EnrolView(AgentView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=EnrolIn, responses={201: EnrolOut, 403: ERROR}, tags=[TOKEN_TAG],
                   summary="Exchange a one-time enrolment code for the host's credential")
    def post(self, request):
        data = self.valid(EnrolIn)
        host, token = agents.enrol(code=data["code"], hostname=data.get("hostname", ""),
                                   version=data.get("agent_version", ""))
        return Response({"host": {"id": host.pk, "name": host.name}, "token": token,
                         "interval": 300, "poll_wait": settings.AGENT_POLL_WAIT},
                        status=status.HTTP_201_CREATED)


# -- check-in ---------------------------------------------------------------------------


class ReportedCertificate(serializers.Serializer):
    document_root = serializers.BooleanField(required=False, default=False)
    key_on_host = serializers.BooleanField(required=False, default=False)
    installed_fingerprint = serializers.RegexField(r"^([0-9a-f]{64})?$", required=False,
                                                   allow_blank=True, default="")
    csr = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)


class CheckInIn(serializers.Serializer):
    agent_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=["run", "serve"], required=False, default="run")
    interval = serializers.IntegerField(min_value=10, max_value=86400, required=False,
                                        default=300)
    wait = serializers.FloatField(min_value=0, max_value=60, required=False, default=0)
    certificates = serializers.DictField(child=ReportedCertificate(), required=False,
                                         default=dict)

    def validate_certificates(self, value):
        if len(value) > 1000:
            raise serializers.ValidationError(_("At most 1000 certificates per agent."))
        return value


class InstallFiles(serializers.Serializer):
    private_key = serializers.CharField(allow_null=True)
    certificate = serializers.CharField()
    ca_bundle = serializers.CharField()
    fullchain = serializers.CharField()


class InstallItem(serializers.Serializer):
    request = serializers.IntegerField()
    certificate = serializers.CharField()
    version = serializers.IntegerField()
    serial = serializers.CharField()
    sni = serializers.CharField()
    fingerprint = serializers.CharField()
    files = InstallFiles()


class ChallengeItem(serializers.Serializer):
    id = serializers.IntegerField()
    certificate = serializers.CharField()
    path = serializers.CharField()
    content = serializers.CharField(required=False)


class CheckInOut(serializers.Serializer):
    interval = serializers.IntegerField()
    poll_wait = serializers.IntegerField()
    install = InstallItem(many=True)
    challenges = inline_serializer("AgentChallenges", {
        "write": ChallengeItem(many=True), "remove": ChallengeItem(many=True)})
    csr = inline_serializer("AgentCSRWanted", {
        "certificate": serializers.CharField(),
        "names": serializers.ListField(child=serializers.CharField())}, many=True)


# DRF deep-copies a serializer's fields for every new instance, which cost a
# fifth of an idle check-in; run_validation keeps nothing on the instance, so
# one shared instance serves every request.
CHECK_IN = CheckInIn()


class CheckInView(AgentView):
    @extend_schema(request=CheckInIn, responses={200: CheckInOut, 401: ERROR, 429: ERROR},
                   tags=[TOKEN_TAG], summary="Report the agent's state and take its work")
    def post(self, request):
        # One serializer bound once (see CHECK_IN), validating without state.
        data = CHECK_IN.run_validation(request.data)
        reported = {name: dict(values) for name, values in data["certificates"].items()}
        for name, values in reported.items():
            if csr := values.pop("csr", ""):
                agents.store_csr(self.host, name, csr)
        work = agents.check_in(self.agent, {**data, "certificates": reported},
                               wait=data["wait"])
        return Response({"interval": data["interval"], "poll_wait": settings.AGENT_POLL_WAIT,
                         **work.as_dict()})


# -- challenge files, CSRs and reports --------------------------------------------------


class ChallengeFailure(serializers.Serializer):
    id = serializers.IntegerField(**ROW_ID)
    error = serializers.CharField(max_length=2000, allow_blank=True)


class ChallengesIn(serializers.Serializer):
    written = serializers.ListField(child=serializers.IntegerField(**ROW_ID), required=False,
                                    default=list, max_length=1000)
    removed = serializers.ListField(child=serializers.IntegerField(**ROW_ID), required=False,
                                    default=list, max_length=1000)
    failed = ChallengeFailure(many=True, required=False, default=list, max_length=1000)


EMPTY = inline_serializer("AgentEmpty", {})


class ChallengesView(AgentView):
    @extend_schema(request=ChallengesIn, responses={200: EMPTY, 400: ERROR}, tags=[TOKEN_TAG],
                   summary="Say which challenge files were written or removed")
    def post(self, request):
        data = self.valid(ChallengesIn)
        agents.record_challenges(self.host, written=data["written"], removed=data["removed"],
                                 failed=data["failed"])
        return Response({})


class CSRIn(serializers.Serializer):
    certificate = serializers.CharField(max_length=253)
    csr = serializers.CharField(max_length=20000)


class CSRView(AgentView):
    @extend_schema(request=CSRIn, responses={200: EMPTY, 400: ERROR}, tags=[TOKEN_TAG],
                   summary="Send the certificate request of a key made on the server")
    def post(self, request):
        data = self.valid(CSRIn)
        agents.store_csr(self.host, data["certificate"], data["csr"])
        return Response({})


class ReportStep(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    status = serializers.CharField(max_length=20)
    detail = serializers.CharField(max_length=8000, allow_blank=True, required=False,
                                   default="")
    at = serializers.CharField(max_length=40, required=False, allow_blank=True)


class ReportIn(serializers.Serializer):
    request = serializers.IntegerField(**ROW_ID)
    outcome = serializers.ChoiceField(choices=sorted(agents.OUTCOMES))
    served_fingerprint = serializers.RegexField(r"^([0-9a-f]{64})?$", required=False,
                                                allow_blank=True, default="")
    error = serializers.CharField(max_length=8000, allow_blank=True, required=False,
                                  default="")
    error_kind = serializers.CharField(max_length=40, allow_blank=True, required=False,
                                       default="")
    transient = serializers.BooleanField(required=False, default=False)
    steps = ReportStep(many=True, required=False, default=list, max_length=200)


class ReportView(AgentView):
    @extend_schema(request=ReportIn, responses={200: EMPTY, 409: ERROR}, tags=[TOKEN_TAG],
                   summary="Report the outcome of an installation, with its steps")
    def post(self, request):
        agents.record_report(self.host, self.valid(ReportIn))
        return Response({})


# -- download ---------------------------------------------------------------------------


@once
def agent_files() -> dict[str, bytes]:
    """The single-file agent, its wheel and their SHA256SUMS, built once per
    process from this portal's own copy of the agent (agent/build.py, offline
    and reproducible): the agent a server downloads is the one this portal
    speaks with."""
    from agent.build import build_all  # the agent's own build code, beside the portal

    with tempfile.TemporaryDirectory() as out:
        return {path.name: path.read_bytes() for path in build_all(out)}


def download(request, name):
    data = agent_files().get(name)
    if data is None:
        raise Http404(name)
    if name == "SHA256SUMS":
        return HttpResponse(data, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Checksum-SHA256"] = hashlib.sha256(data).hexdigest()
    return response
