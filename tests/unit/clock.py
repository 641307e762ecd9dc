# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The unit tests' one frozen clock: every test that needs "now" uses :data:`NOW` (or the ``frozen_clock`` fixture).

Certificates are built relative to NOW and the code under test takes ``now`` as an argument; where a plugin calls
``_time.utc_now`` itself, the fixture in conftest.py freezes it at the same instant.
"""

from __future__ import annotations

import datetime

NOW = datetime.datetime(2026, 11, 25, 8, 0, tzinfo=datetime.timezone.utc)
