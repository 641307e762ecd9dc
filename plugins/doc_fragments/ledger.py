# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The ``ledger``, ``ledger_webhook`` and ``ledger_run_id`` options (mirror LEDGER_ARGSPEC in
    plugin_utils/_ledger.py; a unit test keeps them equal)."""

    DOCUMENTATION = r"""
options:
  ledger:
    description:
      - A path on the Ansible controller of the audit ledger, a file of JSON lines. Every change the task makes
        (and every failed attempt) appends one record to it, the C(change_record) this module returns; the
        record format and how to read it with C(jq) are in the collection's C(docs/ledger.md).
      - A new file is created with mode C(0600); the mode of an existing file is never changed. The parent
        directory must exist. A symbolic link is followed to an existing regular file; a directory, a FIFO, a
        device or a dangling link is refused. Both are checked before the task changes anything, in check mode
        too.
      - Safe when many forks append at once on a local filesystem. Each task takes an exclusive C(flock) of the
        file around one write, then calls C(fsync), so records never interleave and none is lost. On NFS or
        other network filesystems C(flock) is not guaranteed to lock, so do not share one ledger there.
      - When the record cannot be appended all the same (a full disk), the task fails, naming the path and the
        record.
      - Set it once for all modules of a play with C(module_defaults) for the action group
        C(group/exchange.pki.lifecycle) (an example is in C(docs/ledger.md)).
      - Passwords and private keys are never written to the ledger.
      - Without it no ledger is written; C(change_record) is returned all the same.
    type: path
  ledger_run_id:
    description:
      - A correlation id written as C(run_id) into every ledger record of the task, so that the records of one run
        can be found together (C(exchange.pki.ledger_info) O(exchange.pki.ledger_info#module:plan_id) matches it).
      - C(playbooks/renew.yml) sets it to the renewal plan's C(plan_id) for every module of the run through
        C(module_defaults) for C(group/exchange.pki.lifecycle); an AWX job may use its job id.
      - One line of at most 128 characters without control characters; an empty string is the same as not set.
    type: str
  ledger_webhook:
    description:
      - A second sink for the audit ledger, for a SIEM or a log collector. Each record is appended to O(ledger)
        first (which is then required), then POSTed to this webhook as one JSON object, exactly the line of the
        file (C(Content-Type) C(application/json), one POST per record).
      - Records hold no passwords or private keys (they are scrubbed before the file is written), so neither does
        the POST.
      - When the POST fails (refused, timed out, any answer but 2xx; redirects are never followed) the task fails.
        The message names the record (its time, module, server and action) and says that it is in the ledger
        file, from where it can be sent again. The change on the server was made all the same.
      - In check mode nothing is written and nothing is sent. The options are checked before anything changes.
    type: dict
    suboptions:
      url:
        description:
          - The URL to POST to, C(https://) (C(http://) only with O(ledger_webhook.allow_http)). Treated as a secret;
            only its scheme, host and port are ever shown. No credentials in it (use O(ledger_webhook.headers)).
        type: str
        required: true
      headers:
        description:
          - Extra HTTP headers, for example C(Authorization) (a Splunk HEC token). Never logged or returned.
          - Names are HTTP tokens; values are ASCII on one line (a CR, LF or NUL is refused, naming the header).
        type: dict
        default: {}
      timeout:
        description:
          - Seconds the POST may take until the webhook has answered completely; greater than 0, at most 3600.
        type: float
        default: 30
      ca_path:
        description:
          - A PEM file of the CA certificates to trust for the webhook's server certificate (an internal CA).
            Without it the controller's trust store is used. The certificate is always verified.
        type: path
      allow_http:
        description:
          - Accept an C(http://) URL, which sends the records and the headers unencrypted.
        type: bool
        default: false
"""
