"""Time-based one-time passwords (RFC 6238) and their enrolment QR code."""

from __future__ import annotations

import pyotp
import segno

from flowdock_kernel.clock import Clock, SystemClock


class PyOtpTotp:
    """RFC 6238 with pyotp: 30 s steps, 6 digits, SHA-1 (what authenticator apps support), server clock only."""

    def __init__(self, issuer: str, clock: Clock | None = None) -> None:
        self.issuer = issuer
        self._clock = clock or SystemClock()

    def new_secret(self) -> str:
        return pyotp.random_base32(32)  # 160 bits from `secrets`

    def uri(self, secret: str, account: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=self.issuer)

    def qr_svg(self, uri: str) -> str:
        return str(segno.make(uri, error="m").svg_inline(scale=4))

    def matching_step(self, secret: str, code: str) -> int | None:
        totp = pyotp.TOTP(secret)
        now = self._clock.time()
        step = int(now // totp.interval)
        for candidate in (step, step - 1, step + 1):
            if pyotp.utils.strings_equal(totp.at(candidate * totp.interval), code):
                return candidate
        return None
