# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options of the Exchange management session (mirrors EXCHANGE_SESSION_ARGSPEC in plugin_utils/_remote.py)."""

    DOCUMENTATION = r"""
options:
  exchange_uri:
    description:
      - Connection URI of the Exchange management endpoint that the remote executor opens an implicit
        remoting session to (configuration C(Microsoft.Exchange)).
      - Defaults to C(http://<FQDN of the managed host>/PowerShell/).
      - Must be an C(http://) or C(https://) URL with a host, without a user name or password, query, fragment,
        whitespace or control characters; anything else fails the task naming this option.
    type: str
  exchange_username:
    description:
      - User name of an explicit credential for the Exchange session, for example C(CONTOSO\\exadmin).
      - Without it the session uses the identity of the Ansible connection. Over WinRM that identity can
        only authenticate onward to the Exchange endpoint (the double hop) with become (C(become_method=runas)),
        CredSSP or Kerberos delegation; an explicit credential is the other way.
      - Requires O(exchange_password). Both empty (V("")) means not given, so that
        C("{{ user | default('') }}") works; one empty and the other not fails the task.
      - Must not contain control characters (CR, LF, NUL).
    type: str
  exchange_password:
    description:
      - Password of O(exchange_username). It is sent to the host as a module argument marked C(no_log)
        and never appears in results or logs.
    type: str
  exchange_authentication:
    description:
      - Authentication mechanism of the Exchange session.
      - C(Kerberos) is what the Exchange endpoint accepts by default; C(Basic) requires Basic
        authentication to be enabled on the PowerShell virtual directory, and an C(https://) O(exchange_uri)
        (refused over C(http://), where the password would cross the network in clear).
    type: str
    choices: [Kerberos, Negotiate, Default, Basic]
    default: Kerberos
notes:
  - Exchange cmdlets run through implicit remoting to the Exchange management endpoint, the supported
    way; the Exchange snap-in is never loaded. The session is always removed at the end of the task.
"""
