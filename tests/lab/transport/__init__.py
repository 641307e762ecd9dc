# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's WS-Management transport: SOAP, authentication, WinRS shells and the exec-wrapper dispatch.

See tests/lab/TRANSPORT.md for what is modelled from WS-Management and what is not.
"""
