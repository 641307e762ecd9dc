# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` against the `dag` lab: IMAP and POP verification, the verify-failure
record, `cleanup: keep`, and ACME renewal information (ARI).

- The mail certificate holds IMAP and POP on every member; the lab serves IMAP STARTTLS and POP3 STLS with the
  certificate Exchange presents. A renewal verifies both on each member (the probes' ports from
  exchange_pki_lab_ports). What the controller reaches as ex2's IMAP still presents the old certificate after the
  services moved (a stale proxy: ex3's IMAP, which ex2's rollout does not touch): ex2 fails verification, is rolled
  back (IMAP and POP back on the old certificate, verified), DAG1 stops, ex4 goes on; the ledger's renewal_failed
  message names the endpoint, the certificate it served and the one expected. Once the proxy is fixed a rerun
  converges and every member presents the new certificate over IMAP and POP.
- `cleanup: keep`: the renewal leaves the old certificate beside the new one; the next run plans nothing (the old
  one is listed as superseded) and changes nothing.
- ARI: a small ACME directory stub (directory with or without renewalInfo, renewalInfo/<cert-id> answering a
  suggested window) in front of nothing else: the plan (check mode) of an acme-issued identity that is not due by
  its days is due once the window has begun, current while it is in the future, and unchanged when the directory
  has no renewalInfo (as Debian's pebble 2.4.0), which is then asked nothing more. With renewal_now the window is
  judged at the plan's time, not the controller's clock.
"""

from __future__ import annotations

import base64
import datetime
import imaplib
import json
import poplib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .conftest import Lab
from .test_renew_playbook_backends import MEMBERS, Renewal, ownca_renewal
from .test_renewal_role import _context, mail_certificates, outcomes, served, thumbprint


def imap_thumbprint(port: int) -> str:
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as imap:
        imap.starttls(ssl_context=_context())
        der = imap.sock.getpeercert(binary_form=True)
    assert der
    return thumbprint(der)


def pop_thumbprint(port: int) -> str:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        pop.stls(context=_context())
        der = pop.sock.getpeercert(binary_form=True)
    finally:
        pop.quit()
    assert der
    return thumbprint(der)


def mail_protocols(renewal: Renewal) -> dict[str, tuple[str, str]]:
    return {server: (imap_thumbprint(renewal.ports[server]["imap"]), pop_thumbprint(renewal.ports[server]["pop"]))
            for server in MEMBERS}


# --- IMAP and POP verification, the verify-failure record -------------------------------------------------------


def test_imap_and_pop_are_verified_and_a_member_whose_imap_presents_the_old_certificate_is_rolled_back(
        fresh_lab: Lab, tmp_path: Path) -> None:
    renewal = ownca_renewal(fresh_lab, tmp_path)
    old = renewal.old
    assert mail_protocols(renewal) == dict.fromkeys(MEMBERS, (old, old))
    renewal.probe_ports({"ex2": {**renewal.ports["ex2"], "imap": renewal.ports["ex3"]["imap"]}})

    run = renewal.run()

    assert run.returncode != 0
    serving = renewal.assert_always_serving({old} | {c["thumbprint"] for c in mail_certificates(fresh_lab)["ex1"]})
    new = serving["ex1"]
    assert new != old and serving == {"ex1": new, "ex2": old, "ex3": old, "ex4": new}
    # ex1 and ex4 verified IMAP and POP (both probed, both passed); ex2 is back on the old certificate for both.
    assert mail_protocols(renewal) == {"ex1": (new, new), "ex2": (old, old), "ex3": (old, old), "ex4": (new, new)}
    record = next(r for r in outcomes(renewal.work) if r["action"] == "renewal_failed")
    assert record["after"]["step"] == "verify" and record["after"]["failed_host"] == "ex2", record
    assert record["after"]["rolled_back"] is True
    message = record["message"]
    assert "Unknown error" not in message, message
    assert f"IMAP STARTTLS 127.0.0.1:{renewal.ports['ex3']['imap']} served {old}" in message, message
    assert f"expected {new}" in message, message
    assert "HTTPS" not in message and "POP3" not in message, message  # only the endpoint that failed
    for host in ("ex1", "ex4"):
        verified = run.stdout.split(f"Verify the new certificate over IMAP and POP (STARTTLS) on {host}]", 1)[1]
        verified = verified.split("TASK [", 1)[0]
        assert "(item=IMAP)" in verified and "(item=POP)" in verified, verified

    renewal.probe_ports({})  # the proxy is fixed
    again = renewal.run("-e", "renewal_force=true")

    assert again.returncode == 0, again.stdout[-6000:] + again.stderr
    assert renewal.assert_always_serving({new}) == dict.fromkeys(MEMBERS, new)
    assert mail_protocols(renewal) == dict.fromkeys(MEMBERS, (new, new))
    renewal.assert_rerun_idle()


# --- cleanup: keep ----------------------------------------------------------------------------------------------


def test_with_cleanup_keep_the_kept_old_certificate_is_not_renewed_again(fresh_lab: Lab, tmp_path: Path) -> None:
    renewal = ownca_renewal(fresh_lab, tmp_path, cleanup="keep")
    old = renewal.old

    run = renewal.run()

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr
    held = {server: {c["thumbprint"] for c in certificates} for server, certificates in
            mail_certificates(fresh_lab).items()}
    (new,) = held["ex1"] - {old}
    assert held == dict.fromkeys(MEMBERS, {old, new})  # kept beside the new one everywhere
    assert renewal.assert_always_serving({new}) == dict.fromkeys(MEMBERS, new)
    mutations, ledger = len(fresh_lab.mutations()), renewal.ledger_text()

    again = renewal.run()

    assert again.returncode == 0, again.stdout[-6000:] + again.stderr
    assert "due 0" in again.stdout
    assert f"superseded by the renewed certificate {new} on the same servers (ex1, ex2, ex3, ex4)" in again.stdout
    assert len(fresh_lab.mutations()) == mutations and renewal.ledger_text() == ledger


# --- ACME renewal information -----------------------------------------------------------------------------------


class AcmeStub:
    """An ACME directory (with renewalInfo or without) and its renewalInfo resource, over plain HTTP."""

    def __init__(self) -> None:
        self.renewal_info = True
        self.window: tuple[datetime.datetime, datetime.datetime] | None = None
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                stub.requests.append(self.path)
                base = f"http://127.0.0.1:{stub.port}"
                if self.path == "/directory":
                    body: dict[str, Any] = {"newNonce": f"{base}/nonce", "newAccount": f"{base}/account",
                                            "newOrder": f"{base}/order", "meta": {}}
                    if stub.renewal_info:
                        body["renewalInfo"] = f"{base}/renewal-info"
                elif self.path.startswith("/renewal-info/") and stub.window is not None:
                    body = {"suggestedWindow": {"start": stub.window[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                "end": stub.window[1].strftime("%Y-%m-%dT%H:%M:%SZ")},
                            "explanationURL": "https://acme.example/why"}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def acme_stub() -> Iterator[AcmeStub]:
    stub = AcmeStub()
    try:
        yield stub
    finally:
        stub.close()


def cert_id(der: bytes) -> str:
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial number DER octets)."""
    certificate = x509.load_der_x509_certificate(der)
    key_id = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = certificate.serial_number
    octets = serial.to_bytes((serial.bit_length() + 8) // 8, "big")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(key_id)}.{b64(octets)}"


def iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_ari_makes_an_acme_identity_due_once_its_window_has_begun(
        fresh_lab: Lab, tmp_path: Path, acme_stub: AcmeStub) -> None:
    work = tmp_path / "work"
    work.mkdir()
    directory = f"http://127.0.0.1:{acme_stub.port}/directory"
    backend = {"backend": "acme", "options": {"directory": directory, "account_key_path": str(tmp_path / "a.key")}}
    # 20 days left, renew_before_days 10: not due by its days.
    renewal = Renewal(fresh_lab, work, backend, fresh_lab.state_dir / "ca.pem", renew_before_days=10)
    now = datetime.datetime.now(datetime.timezone.utc)
    expected_id = cert_id(served(renewal.ports["ex1"]["https"]))

    acme_stub.window = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))
    begun = renewal.run("--check")

    assert begun.returncode == 0, begun.stdout[-6000:] + begun.stderr
    assert "due 1" in begun.stdout
    assert "ACME renewal information (ARI): The suggested renewal interval provided by ARI has begun" in begun.stdout
    assert f"/renewal-info/{expected_id}" in acme_stub.requests  # the certificate's RFC 9773 id
    assert fresh_lab.mutations() == []

    # A plan made for another time (renewal_now) asks whether the window has begun by then: not yet two days ago.
    acme_stub.requests.clear()
    earlier = renewal.run("--check", "-e", f"renewal_now={iso(now - datetime.timedelta(days=2))}")

    assert earlier.returncode == 0, earlier.stdout[-6000:] + earlier.stderr
    assert "due 0" in earlier.stdout and "current 1" in earlier.stdout
    assert f"/renewal-info/{expected_id}" in acme_stub.requests  # asked, and the answer was "not yet"

    acme_stub.window = (now + datetime.timedelta(days=3), now + datetime.timedelta(days=5))
    future = renewal.run("--check")

    assert future.returncode == 0, future.stdout[-6000:] + future.stderr
    assert "due 0" in future.stdout and "current 1" in future.stdout

    # ... and four days from now the window of three to five days from now has begun.
    later = renewal.run("--check", "-e", f"renewal_now={iso(now + datetime.timedelta(days=4))}")

    assert later.returncode == 0, later.stdout[-6000:] + later.stderr
    assert "due 1" in later.stdout
    assert "ACME renewal information (ARI): The suggested renewal interval provided by ARI has begun" in later.stdout
    assert fresh_lab.mutations() == []

    acme_stub.renewal_info = False
    acme_stub.requests.clear()
    without = renewal.run("--check")

    assert without.returncode == 0, without.stdout[-6000:] + without.stderr
    assert "due 0" in without.stdout and "current 1" in without.stdout
    assert "ACME renewal information" not in without.stdout.split("Keep the plan", 1)[1]
    assert acme_stub.requests == ["/directory"]  # nothing more is asked
    assert fresh_lab.mutations() == []
