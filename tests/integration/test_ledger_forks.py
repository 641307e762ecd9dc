# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safety invariant 7 through ansible-playbook: many forks appending to one ledger lose no line.

Every host of the `dag` lab runs a changing task at the same time (10 forks, the ledger set once through
module_defaults on the lifecycle action group), twice over; the ledger then holds exactly one intact record per
change, and the controller-side key files are mode 0600 (invariant 4).
"""

from __future__ import annotations

import os
import stat

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_ledger

from .conftest import Lab

HOSTS = ("ex1", "ex2", "ex3", "ex4")


def test_concurrent_forks_append_every_record(dag_lab: Lab, playbook, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    tasks = f"""\
        - name: Make a key and request per host on the controller, twice, all hosts at once
          module_defaults:
            group/exchange.pki.lifecycle:
              ledger: {ledger}
          exchange.pki.certificate_request:
            subject: "C=US,O=Contoso,CN={{{{ inventory_hostname }}}}-{{{{ item }}}}.contoso.lab"
            key_location: controller
            private_key_path: "{tmp_path}/{{{{ inventory_hostname }}}}-{{{{ item }}}}.key"
          loop: [1, 2]
          register: result
        """
    run = playbook(dag_lab, tasks)

    assert run.returncode == 0, run.stdout + run.stderr
    contents = read_ledger(ledger)
    assert contents.skipped == ()
    assert sorted(record.host for record in contents.records) == sorted([*HOSTS, *HOSTS])
    assert all(record.result == "changed" for record in contents.records)
    assert len(ledger.read_text(encoding="utf-8").splitlines()) == 2 * len(HOSTS)
    for host in HOSTS:
        for item in (1, 2):
            assert stat.S_IMODE(os.stat(tmp_path / f"{host}-{item}.key").st_mode) == 0o600
    assert dag_lab.mutations() == []  # key_location controller never contacts the hosts
