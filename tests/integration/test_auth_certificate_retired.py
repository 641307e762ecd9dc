# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.auth_certificate` removes the retired Auth certificate once it has expired.

The `dag` lab's Auth certificate expires in 45 days. The role stages a new one (run 1); the lab clock then moves
one day past the old certificate's expiry, and on the way the lab's AuthAdmin servicelet publishes the new one, so
the old one is Get-AuthConfig's previous certificate, expired. Run 2 clears it and keeps it (while it is previous
Exchange may still validate tokens signed with it). Run 3, the next day, removes it from ex1-ex4 and alerts
`auth_removed` naming it and the servers; run 4, a day later, changes nothing and sends nothing.

Expectations come from the lab's dump (Auth configuration, certificates per server, mutation log), the ledger, the
play recap and the webhook receiver in this process.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.unit.plugins.plugin_utils.alert_sinks import HttpSink

from .conftest import start_lab
from .test_auth_certificate_role import MEMBERS, AuthRun, auth, changed, holders, hook, kinds, parse

__all__ = ["hook"]  # the webhook receiver fixture of the role's test

SERVERS = [member.upper() for member in MEMBERS]


def test_the_expired_retired_certificate_is_removed_from_every_member_once(tmp_path: Path, hook: HttpSink) -> None:
    started = time.monotonic()
    lab = start_lab(tmp_path / "lab", "--scenario", "dag")
    try:
        role = AuthRun(lab, tmp_path, hook)
        old = auth(lab)["CurrentCertificateThumbprint"]

        staged = role()  # 45 days left, window 60: a new certificate is made, imported everywhere and staged
        assert staged.returncode == 0, staged.stdout + staged.stderr
        new = auth(lab)["NextCertificateThumbprint"]
        assert new and new != old

        # One day past the old certificate's NotAfter; the servicelet published the new one on the way.
        dump = lab.dump()
        old_not_after = next(parse(cert["not_after"]) for cert in dump["servers"]["ex1"]["certificates"]["My"]
                             if cert["thumbprint"] == old)
        advance = int((old_not_after - parse(dump["clock"]["now"])).total_seconds()) + 24 * 3600
        lab.control("clock", "--advance", f"{advance}s")
        config = auth(lab)
        assert (config["CurrentCertificateThumbprint"], config["PreviousCertificateThumbprint"]) == (new, old)

        # Previous (expired): cleared, kept on every server.
        cleared = role()
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
        assert auth(lab)["PreviousCertificateThumbprint"] is None
        assert holders(lab.dump(), old) == list(MEMBERS)
        records = len(role.records())

        # The next day: retired and expired, nothing references it: removed from every member, alerted, recorded.
        lab.control("clock", "--advance", "1d")
        removed = role()
        assert removed.returncode == 0, removed.stdout + removed.stderr
        dump = lab.dump()
        assert holders(dump, old) == [] and holders(dump, new) == list(MEMBERS)
        assert sorted(entry["server"].casefold() for entry in dump["mutations"]
                      if entry["operation"] == "Remove-ExchangeCertificate"
                      and entry["summary"]["thumbprint"] == old) == list(MEMBERS)
        assert changed(removed) == 2  # the module task, the alert
        assert len(role.records()) == records + 1
        record = role.records()[-1]
        assert (record["result"], record["before"]["retired_installed_on"], record["after"]["retired_installed_on"]) \
            == ("changed", {old: SERVERS}, {old: []})

        # A day later: nothing due, nothing sent, nothing recorded.
        lab.control("clock", "--advance", "1d")
        mutations = len(lab.mutations())
        daily = role()
        assert daily.returncode == 0, daily.stdout + daily.stderr
        assert changed(daily) == 0 and len(lab.mutations()) == mutations and len(role.records()) == records + 1

        alerts = role.alerts()
        assert len(alerts) == 3, alerts  # staged, cleared, removed; the last run sent nothing
        assert ("auth_removed", "info") not in kinds(alerts[0]) + kinds(alerts[1])
        assert kinds(alerts[1]) == [("auth_cleared", "info")] and alerts[1][0]["certificate"] == old
        assert kinds(alerts[2]) == [("auth_removed", "info")]
        event = alerts[2][0]
        assert event["certificate"] == old and event["server"] == ", ".join(SERVERS)
        assert old in event["summary"] and "EX1, EX2, EX3, EX4" in event["summary"]
    finally:
        lab.control("stop")
        print(f"test_auth_certificate_retired: {time.monotonic() - started:.1f} s")
