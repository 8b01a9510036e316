"""A real SMTP server on loopback (aiosmtpd) that keeps every message it
accepts, for tests of mail sent through Django's SMTP backend."""

from aiosmtpd.controller import Controller

from .ports import free_port


class Inbox:
    """An aiosmtpd handler keeping each accepted envelope; ``host``/``port``
    where it listens once started."""

    def __init__(self):
        self.envelopes = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self.host, self.port = self.controller.hostname, self.controller.port

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()
