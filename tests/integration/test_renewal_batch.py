# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` with `rollout_batch: 2` on a `dag` lab whose DAG1 has four members (ex1,
ex2, ex3 and ex5, a copy of ex1) beside the standalone ex4: the members of a batch roll out at the same time (one
pseudo-host per member, waves of a linear play), batch after batch.

Proven from the lab's mutation log (its `seq` is the order in which the lab carried out the changes), the ledger
and real TLS handshakes:
- the rollout of two DAG1 members overlaps (both imported before either is enabled), never three, the second batch
  starts after the first is done; every server then serves the new certificate with a chain that verifies against
  the lab CA; DAG1's old certificate is removed only after its last member was switched; the ledger has every
  member's import and services records and one outcome per group; groups in parallel (group_concurrency 2) work
  beside the batches (ex4 is switched in the first wave).
- Enable-ExchangeCertificate failing on ex2 (first batch): ex2 is rolled back and serves the old certificate, ex1
  (in flight beside it) is verified and keeps the new one, no member of the second batch (nor, with stop_on_failure
  all, the group ex4) is touched, nothing is removed, and the run fails naming ex2 and the step. Once the fault is
  cleared, a rerun finishes the rollout with the same certificate and removes the old one. Failing on both members of
  the first batch: both are rolled back, the group's record names both, and a cleared rerun converges as well.
- Two certificates due (mail on DAG1 ex1 and ex2, owa on DAG2 ex3 and ex5): each is issued once and rolled out in
  batches of its own, item after item, each group's two members together; every server then serves the new
  certificate of its item and every ledger record names the plan.
rollout_batch 1 is the path of test_renewal_role.py and test_renewal_concurrency.py, unchanged.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import SCENARIOS, Lab
from .test_renewal_role import MAIL, outcomes, prepared_lab, renew, served_thumbprint, thumbprint

DAG1 = ("ex1", "ex2", "ex3", "ex5")
SERVERS = (*DAG1, "ex4")
OWA = "owa.contoso.lab"
# The two-item lab: each DAG's certificate (its name) and members.
ITEMS = {"DAG1": (MAIL, ("ex1", "ex2")), "DAG2": (OWA, ("ex3", "ex5"))}
# The changes of a member's rollout (the lab's mutation log).
ROLLOUT = {"Import-ExchangeCertificate", "Enable-ExchangeCertificate", "host.set_iis_binding"}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """dag.yml with ex5 (a copy of ex1) as DAG1's fourth member."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["servers"].append({**scenario["servers"][0], "name": "ex5"})
    scenario["dags"][0]["members"].append("ex5")
    scenario["send_connectors"][0]["source_servers"].append("ex5")
    path = tmp_path / "dag-five.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with prepared_lab(tmp_path, str(path)) as started:
        yield started


@pytest.fixture
def two_items(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """dag.yml as two DAGs with a due certificate each, no ex4: DAG1 (ex1, ex2) with mail, DAG2 (ex3 and ex5, a copy
    of ex3) with a certificate for OWA bound where mail was."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["certificates"]["owa"] = {**scenario["certificates"]["mail"], "subject": f"CN={OWA}", "dns_names": [OWA]}
    (ex3,) = [server for server in scenario["servers"] if server["name"] == "ex3"]
    ex3["certificates"] = [{**ex3["certificates"][0], "ref": "owa"}]
    ex3["iis"] = {**ex3["iis"], "default_web_site": "owa"}
    scenario["servers"] = [server for server in scenario["servers"] if server["name"] != "ex4"] + [
        {**ex3, "name": "ex5"}]
    scenario["dags"] = [{**scenario["dags"][0], "members": ["ex1", "ex2"]},
                        {**scenario["dags"][0], "name": "DAG2", "members": ["ex3", "ex5"]}]
    scenario["send_connectors"][0]["source_servers"].append("ex5")
    path = tmp_path / "dag-two-items.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with prepared_lab(tmp_path, str(path)) as started:
        yield started


def mail_thumbprints(lab: Lab, name: str = MAIL, servers: tuple[str, ...] = SERVERS) -> dict[str, set[str]]:
    """Each server's certificates (store My) for the subject CN=name."""
    dump = lab.dump()
    return {server: {c["thumbprint"] for c in dump["servers"][server]["certificates"]["My"]
                     if f"CN={name}" in c["subject"]} for server in servers}


def policy(lab: Lab, **settings: Any) -> str:
    return json.dumps({"renewal_policy": {"rollout_batch": 2, **settings, "backends": [
        {"match": {}, "backend": "adcs",
         "options": {"ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]}})


def spans(mutations: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Each server's rollout in the mutation log: the seq of its first and its last rollout change."""
    seqs: dict[str, list[int]] = {}
    for mutation in mutations:
        if mutation["operation"] in ROLLOUT:
            seqs.setdefault(mutation["server"], []).append(mutation["seq"])
    return {server: (min(found), max(found)) for server, found in seqs.items()}


def verified_chain(lab: Lab, port: int, name: str = MAIL) -> bytes:
    """The leaf of a handshake whose chain verifies against the lab CA, for the name ``name``."""
    context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return der


def test_the_members_of_a_batch_roll_out_together(lab: tuple[Lab, Path]) -> None:
    started, work = lab
    (old,) = set().union(*mail_thumbprints(started).values())

    run = renew(started, work, "-e", policy(started, group_concurrency=2), "--forks", "6")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "Roll out the members of each batch together" in run.stdout
    mutations = started.mutations()
    assert [m["operation"] for m in mutations].count("host.certreq_submit") == 1  # issued once
    (new,) = set().union(*mail_thumbprints(started).values())  # the old certificate is gone everywhere
    assert new != old
    ports = started.endpoints()["servers"]
    assert all(thumbprint(verified_chain(started, ports[server]["https"])) == new for server in SERVERS)

    span = spans(mutations)
    # Two members of a batch at the same time: both imported before either is switched ...
    for first, second in (("ex1", "ex2"), ("ex3", "ex5")):
        assert span[first][0] < span[second][1] and span[second][0] < span[first][1], span
    # ... never three: at no change in the log are more than two DAG1 members between their first and last change,
    for mutation in mutations:
        assert sum(span[s][0] <= mutation["seq"] <= span[s][1] for s in DAG1) <= 2, (mutation, span)
    # and the second batch starts once the first is done.
    assert max(span["ex1"][1], span["ex2"][1]) < min(span["ex3"][0], span["ex5"][0]), span
    # ex4, a group of its own (group_concurrency 2), is switched in the first wave.
    assert span["ex4"][1] < min(span["ex3"][0], span["ex5"][0]), span
    # DAG1's old certificate is removed only after its last member was switched, and verified: the waves are serial
    # batches of one play (DAG1's end is the third), and the second verified ex3 and ex5.
    removals = [m["seq"] for m in mutations if m["operation"] == "Remove-ExchangeCertificate" and m["server"] in DAG1]
    assert sorted(m["server"] for m in mutations if m["operation"] == "Remove-ExchangeCertificate") == sorted(SERVERS)
    assert min(removals) > max(end for server, (start, end) in span.items() if server in DAG1)
    waves = run.stdout.split("PLAY [Roll out the members of each batch together]")[1:]
    assert len(waves) == 3
    assert "Verify that the new certificate is served over HTTPS" in waves[1]
    assert "-> ex3(" in waves[1] and "-> ex5(" in waves[1]
    assert all("Remove the old certificates that nothing references any more from ex1" not in wave
               for wave in waves[:2])
    assert "Remove the old certificates that nothing references any more from ex1" in waves[2]

    records = [json.loads(line) for line in (work / "ledger.jsonl").read_text().splitlines()]
    for module in ("exchange.pki.certificate_import", "exchange.pki.certificate_services"):
        assert sorted(r["server"] for r in records if r["module"] == module) == sorted(s.upper() for s in SERVERS)
    done = outcomes(work)
    assert sorted((r["action"], r["after"]["group"]) for r in done) == [("renewal_done", "DAG1"),
                                                                        ("renewal_done", "ex4")]
    dag1 = next(r for r in done if r["after"]["group"] == "DAG1")
    assert sorted(dag1["after"]["members"]) == list(DAG1) and len(dag1["after"]["removed"]) == 4
    # every record of the run names the plan, the members' module records (rolled out by the wave play) too
    assert {r["run_id"] for r in records} == {dag1["run_id"]}


def test_a_failure_in_a_batch_stops_the_group(lab: tuple[Lab, Path]) -> None:
    started, work = lab
    (old,) = set().union(*mail_thumbprints(started).values())
    started.control("fault", "--server", "ex2", "--operation", "Enable-ExchangeCertificate",
                    "--error", "The certificate could not be bound (injected)")

    run = renew(started, work, "-e", policy(started, stop_on_failure="all"), "--forks", "6")

    assert run.returncode != 0
    # The failed task is named with ex2 (the members of a wave share one task, named with one of them).
    assert "ex2: step services (Move the old certificate's services to the new one (the internal transport " \
           "certificate stays) on ex2) failed" in run.stdout, run.stdout
    mutations = started.mutations()
    assert {m["server"] for m in mutations if m["operation"] in ROLLOUT} == {"ex1", "ex2"}  # ex3, ex5, ex4 untouched
    assert "Remove-ExchangeCertificate" not in {m["operation"] for m in mutations}
    thumbprints = mail_thumbprints(started)
    (new,) = thumbprints["ex1"] - {old}
    ports = started.endpoints()["servers"]
    assert served_thumbprint(ports["ex1"]["https"]) == new  # in flight beside ex2: verified, kept
    assert served_thumbprint(ports["ex2"]["https"]) == old  # rolled back
    for server in ("ex3", "ex5", "ex4"):
        assert thumbprints[server] == {old} and served_thumbprint(ports[server]["https"]) == old
    (failed,) = [r for r in outcomes(work) if r["action"] == "renewal_failed"]
    assert failed["after"]["group"] == "DAG1" and failed["after"]["failed_host"] == "ex2"
    assert failed["after"]["step"] == "services" and failed["after"]["rolled_back"] is True
    assert failed["after"]["removed"] == [] and "injected" in failed["message"]
    assert [r for r in outcomes(work) if r["after"]["group"] == "ex4"] == []  # stop_on_failure all: not started

    rerun_converges(started, work, new, faulty=("ex2",))


def rerun_converges(started: Lab, work: Path, new: str, faulty: tuple[str, ...]) -> None:
    """Once the faults of ``faulty`` are cleared, the rerun finishes the rollout in batches with ``new`` (the
    certificate the failed run issued, not issued again) and removes the old one: every group done."""
    for server in faulty:
        started.control("fault", "--server", server, "--clear")
    again = renew(started, work, "-e", policy(started, stop_on_failure="all"), "-e", "renewal_force=true",
                  "--forks", "6")

    assert again.returncode == 0, again.stdout + again.stderr
    assert set().union(*mail_thumbprints(started).values()) == {new}
    ports = started.endpoints()["servers"]
    assert all(served_thumbprint(ports[server]["https"]) == new for server in SERVERS)
    assert [m["operation"] for m in started.mutations()].count("host.certreq_submit") == 1  # not issued again
    rerun_outcomes = sorted((r["action"], r["after"]["group"]) for r in outcomes(work)[-2:])
    assert rerun_outcomes == [("renewal_done", "DAG1"), ("renewal_done", "ex4")]


def test_both_failed_members_of_a_batch_are_rolled_back(lab: tuple[Lab, Path]) -> None:
    started, work = lab
    (old,) = set().union(*mail_thumbprints(started).values())
    for server in ("ex1", "ex2"):
        started.control("fault", "--server", server, "--operation", "Enable-ExchangeCertificate",
                        "--error", f"The certificate could not be bound on {server} (injected)")

    run = renew(started, work, "-e", policy(started, stop_on_failure="all"), "--forks", "6")

    assert run.returncode != 0
    for server in ("ex1", "ex2"):  # the run names both, each with its own step and error
        assert f"{server}: step services (Move the old certificate's services to the new one (the internal transport " \
               f"certificate stays) on {server}) failed" in run.stdout, run.stdout
        assert f"could not be bound on {server} (injected)" in run.stdout
    mutations = started.mutations()
    assert {m["server"] for m in mutations if m["operation"] in ROLLOUT} == {"ex1", "ex2"}  # ex3, ex5, ex4 untouched
    assert "Remove-ExchangeCertificate" not in {m["operation"] for m in mutations}
    ports = started.endpoints()["servers"]
    assert all(served_thumbprint(ports[server]["https"]) == old for server in SERVERS)  # both rolled back
    thumbprints = mail_thumbprints(started)
    for server in ("ex3", "ex5", "ex4"):
        assert thumbprints[server] == {old}
    (failed,) = [r for r in outcomes(work) if r["action"] == "renewal_failed"]
    new = failed["after"]["thumbprint"]
    assert new != old
    # The group's record names the first failed member, its message both, rolled_back both.
    assert failed["after"]["group"] == "DAG1" and failed["after"]["failed_host"] == "ex1"
    assert failed["after"]["step"] == "services" and failed["after"]["rolled_back"] is True
    assert failed["after"]["removed"] == []
    assert "ex1: step services" in failed["message"] and "ex2: step services" in failed["message"]
    assert [r for r in outcomes(work) if r["after"]["group"] == "ex4"] == []  # stop_on_failure all: not started

    rerun_converges(started, work, new, faulty=("ex1", "ex2"))


def test_two_items_roll_out_in_batches_item_after_item(two_items: tuple[Lab, Path]) -> None:
    started, work = two_items
    old = {group: set().union(*mail_thumbprints(started, name, members).values())
           for group, (name, members) in ITEMS.items()}

    run = renew(started, work, "-e", policy(started, group_concurrency=2), "--forks", "4")

    assert run.returncode == 0, run.stdout + run.stderr
    mutations = started.mutations()
    assert [m["operation"] for m in mutations].count("host.certreq_submit") == 2  # each item issued once
    ports = started.endpoints()["servers"]
    new = {}
    for group, (name, members) in ITEMS.items():
        (new[group],) = set().union(*mail_thumbprints(started, name, members).values())  # the old one gone
        assert new[group] not in old[group]
        # each member serves its item's new certificate, with a chain that verifies for the item's name
        assert all(thumbprint(verified_chain(started, ports[server]["https"], name)) == new[group]
                   for server in members)

    def first(operation: str, server: str) -> int:
        return min(m["seq"] for m in mutations if m["operation"] == operation and m["server"] == server)

    # Each group's two members at the same time: both hold the new certificate before either is switched (the
    # request server, ex1 and ex3, since the item was issued).
    for _name, members in ITEMS.values():
        assert max(first("Import-ExchangeCertificate", server) for server in members) < min(
            first("Enable-ExchangeCertificate", server) for server in members), mutations
    # The rollout's changes: both items were issued before the rollout play, each completing its request with the
    # first import of its certificate, which the rollout does not repeat.
    imported: set[tuple[str, ...]] = set()
    rollout = []
    for mutation in mutations:
        certificates = tuple(mutation["summary"].get("thumbprints", ()))
        if mutation["operation"] == "Import-ExchangeCertificate" and certificates not in imported:
            imported.add(certificates)
            continue
        rollout.append(mutation)
    span = spans(rollout)
    # Never more than a batch of two in flight (the items do not mix, though group_concurrency 2 would let their
    # groups run beside each other), and the second item starts once the first item is done.
    for mutation in rollout:
        assert sum(start <= mutation["seq"] <= end for start, end in span.values()) <= 2, (mutation, span)
    assert max(span["ex1"][1], span["ex2"][1]) < min(span["ex3"][0], span["ex5"][0]), span

    records = [json.loads(line) for line in (work / "ledger.jsonl").read_text().splitlines()]
    for module in ("exchange.pki.certificate_import", "exchange.pki.certificate_services"):
        assert sorted(r["server"] for r in records if r["module"] == module) == ["EX1", "EX2", "EX3", "EX5"]
    done = outcomes(work)
    assert sorted((r["action"], r["after"]["group"], r["after"]["thumbprint"]) for r in done) == [
        ("renewal_done", "DAG1", new["DAG1"]), ("renewal_done", "DAG2", new["DAG2"])]
    assert len({r["after"]["identity"] for r in done}) == 2
    # every record of the run names the plan, the members' module records of both items too
    assert {r["run_id"] for r in records} == {done[0]["run_id"]}
