# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# This doc fragment is private to exchange.pki: it may change in any release. Other collections must not use it.

from __future__ import annotations


class ModuleDocFragment:
    """The module attributes shared by the exchange.pki modules.

    DOCUMENTATION describes each attribute once; the other variables give the values modules have in common.
    A module lists the ones that apply to it and adds only its own ``details``.
    """

    # What each attribute means (every module extends this one).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Whether the task runs in check mode, and what it does then.
  diff_mode:
    description: Whether the task returns a diff of what it changes (or would change in check mode).
  platform:
    description: Where the work happens.
    support: N/A
"""

    # For modules with an action plugin (everything but the remote executor).
    ACTION = r"""
options: {}
attributes:
  action:
    description: The module has an action plugin; its decisions are made in Python on the controller.
    support: full
  async:
    description: Whether the task can run with the C(async) keyword.
    support: none
  bypass_host_loop:
    description: Whether the task runs once for all hosts instead of once per host.
    support: none
"""

    # For modules that never change anything (certificate_info, tls_probe).
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so check mode runs the same reads and returns the same result.
  diff_mode:
    support: none
"""

    # For modules that talk to an Exchange server through the remote executor.
    EXCHANGE_HOST = r"""
options: {}
attributes:
  platform:
    platforms: windows
    details:
      - A Windows host running Exchange Server 2016, 2019 or Subscription Edition, reached over WinRM.
"""

    # For modules that run on the controller only and contact no managed host.
    CONTROLLER = r"""
options: {}
attributes:
  platform:
    platforms: all
    details:
      - Runs on the controller; the managed host is not contacted.
"""
