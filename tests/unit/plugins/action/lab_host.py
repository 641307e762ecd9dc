# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run an action plugin against one server of an in-process lab fleet (tests/lab/model).

The plugin's ``_execute_module`` is answered by the lab's model of the remote executor, so a changing module's
unit tests see Exchange's real semantics (additive services, SMTP -Force, pending requests, ...) and can check
the result against the lab's own dump and mutation log, never against values written in the test:

    fleet = Fleet.from_scenario("dag", now=NOW)
    ex1 = LabHost(fleet, "ex1")
    result = ex1.run(certificate_services.ActionModule, {"thumbprint": ..., "services": ["IIS"]}, check_mode=True)
    assert ex1.mutations() == []
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from ansible.plugins.action import ActionBase

from tests.lab.model import DroppedConnection, Fleet
from tests.unit.plugins.action.action_harness import FakeTask

#: The account the lab's scenarios give the Exchange administrator (the connection's remote user).
ADMIN = "CONTOSO\\ansible"


@dataclasses.dataclass
class LabHost:
    """One lab server behind an action plugin: every module call is recorded and answered by the fleet."""

    fleet: Fleet
    name: str
    become: bool = False
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def run(self, cls: type[ActionBase], args: Mapping[str, Any] | None = None, *, check_mode: bool = False,
            diff: bool = False, task_vars: Mapping[str, Any] | None = None,
            action: str = "exchange.pki.plugin") -> dict[str, Any]:
        """Run the plugin ``cls`` as one task on this host and return the task result."""
        task = FakeTask(dict(args or {}), check_mode=check_mode, action=action, resolved_action=action, diff=diff)
        plugin = cls(task, SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/ansible-test")), SimpleNamespace(),
                     None, None, None)
        plugin._execute_module = self._execute_module(task)  # noqa: SLF001 - the seam the harness replaces
        return plugin.run(task_vars={"inventory_hostname": self.name, "ansible_user": ADMIN, **(task_vars or {})})

    def _execute_module(self, task: FakeTask) -> Callable[..., dict[str, Any]]:
        def execute(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
            del task_vars
            self.calls.append({"module_name": module_name, "module_args": module_args})
            try:
                return self.fleet.run_module(self.name, module_name, module_args, check_mode=task.check_mode,
                                             become=self.become, remote_user=ADMIN)
            except DroppedConnection as dropped:  # the operations before the drop ran; the answer is lost
                raise ConnectionResetError(104, f"Connection reset by peer ({dropped})") from None

        return execute

    def dump(self) -> dict[str, Any]:
        """The lab's state of this server."""
        return self.fleet.dump()["servers"][self.name]

    def mutations(self) -> list[dict[str, Any]]:
        """Every change the lab recorded (on any server and the organisation), in order."""
        return self.fleet.dump()["mutations"]
