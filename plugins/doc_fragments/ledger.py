# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The ``ledger`` option (mirrors LEDGER_ARGSPEC in plugin_utils/_ledger.py; a unit test keeps them equal)."""

    DOCUMENTATION = r"""
options:
  ledger:
    description:
      - A path on the Ansible controller of the audit ledger, a file of JSON lines. Every change the task makes
        (and every failed attempt) appends one record to it, the C(change_record) this module returns; the
        record format and how to read it with C(jq) are in the collection's C(docs/ledger.md).
      - A new file is created with mode C(0600); the mode of an existing file is never changed. The parent
        directory must exist. A symbolic link is followed to an existing regular file; a directory, a FIFO, a
        device or a dangling link is refused.
      - Safe when many forks append at once on a local filesystem. Each task takes an exclusive C(flock) of the
        file around one write, then calls C(fsync), so records never interleave and none is lost. On NFS or
        other network filesystems C(flock) is not guaranteed to lock, so do not share one ledger there.
      - When the record cannot be appended the task fails, naming the path and the record.
      - Set it once for all modules of a play with C(module_defaults) for the action group
        C(group/exchange.pki.lifecycle) (an example is in C(docs/ledger.md)).
      - Passwords and private keys are never written to the ledger.
      - Without it no ledger is written; C(change_record) is returned all the same.
    type: path
"""
