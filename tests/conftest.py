# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order of the test files: the longest first, so that `make pytest`'s xdist workers end together.

`make pytest` hands whole files to its two workers (``--dist loadfile``, so that a file's module-scoped lab starts
once) in collection order (``--no-loadscope-reorder``). xdist's own order starts the files with the most tests first:
the many quick unit files, then the integration files, which have few tests but take minutes, so the last files
handed out (the ones that decide how long one worker idles at the end) were integration files of 20 to 110 s.
Longest first, the quick unit and lab files come last and fill the gaps.

FILE_SECONDS holds each file's time (setup + call + teardown of its tests, the sum of `--durations=0`) on the
2-core machine; only the order matters, not the figures. A file not listed counts as NEW_INTEGRATION_SECONDS when it
is under tests/integration (a new file is more likely slow than not: it then starts early, which costs nothing when
it turns out quick) and as 0 elsewhere (unit and lab tests take seconds); files of equal weight keep pytest's order.
"""

from __future__ import annotations

import pytest

# Measured on 2026-12-02 (`pytest -n 2 --dist loadfile --durations=0`, the machine loaded: the figures are about twice
# a quiet machine's; test_renewal_role.py without the run test_renewal_status.py now makes); files of under 8 s
# are left out (0).
FILE_SECONDS: dict[str, float] = {
    "tests/integration/test_renew_playbook_backends.py": 647,
    "tests/integration/test_renewal_backends.py": 374,
    "tests/integration/test_scheduled_year.py": 373,
    "tests/integration/test_renewal_verify_ari.py": 282,
    "tests/integration/test_renewal_role.py": 243,
    "tests/integration/test_inventory_playbook.py": 183,
    # The sweeps of tests/unit/plugins/action: 2026-12-03, the four files at once on the two cores (loaded as above).
    "tests/unit/plugins/action/test_fault_sweep.py": 178,
    "tests/integration/test_renewal_concurrency.py": 131,
    "tests/integration/test_faults.py": 131,
    "tests/integration/test_renewal_status.py": 107,
    "tests/integration/test_auth_certificate_role.py": 87,
    "tests/integration/test_ansible_runner.py": 75,
    "tests/integration/test_certificate_info.py": 69,
    "tests/integration/test_change_operations.py": 61,
    "tests/integration/test_report.py": 61,
    "tests/integration/test_manual_renewal.py": 53,
    "tests/integration/test_auth_certificate.py": 47,
    "tests/integration/test_certificate_import.py": 42,
    "tests/unit/plugins/action/test_certificate_import.py": 39,
    "tests/unit/plugins/action/test_check_mode_sweep.py": 38,
    "tests/integration/test_read_operations.py": 35,
    "tests/integration/test_tls_probe.py": 33,
    "tests/integration/test_adcs_request.py": 32,
    "tests/integration/test_certificate_remove.py": 27,
    "tests/unit/plugins/action/test_certificate_request.py": 27,
    "tests/integration/test_certificate_services.py": 27,
    "tests/unit/plugins/action/test_certificate_services.py": 25,
    "tests/integration/test_playbook_credentials.py": 25,
    "tests/integration/test_inventory_role_failures.py": 24,
    "tests/integration/test_inventory_fact_cache.py": 22,
    "tests/integration/test_certificate_request.py": 22,
    "tests/unit/plugins/action/test_secret_sweep.py": 29,
    "tests/unit/plugins/action/test_hostile_options.py": 29,
    "tests/unit/plugins/action/test_adcs_request.py": 22,
    "tests/unit/tools/test_check_ee.py": 21,
    "tests/integration/test_certificate_export.py": 21,
    "tests/integration/test_ledger_forks.py": 20,
    "tests/integration/test_ledger_info.py": 20,
    "tests/unit/plugins/action/test_fleet_alert.py": 19,
    "tests/unit/plugins/action/test_certificate_info.py": 19,
    "tests/unit/plugins/action/test_ledger_info.py": 18,
    "tests/lab/tests/test_model_batch.py": 17,
    "tests/integration/test_report_html_layout.py": 17,
    "tests/lab/tests/test_daemon.py": 16,
    "tests/unit/plugins/plugin_utils/test__alerts.py": 15,
    "tests/lab/tests/test_transport.py": 13,
    "tests/unit/plugins/action/test_auth_certificate.py": 13,
    "tests/unit/plugins/action/test_certificate_remove.py": 12,
    "tests/unit/plugins/action/test_fleet_alert_events.py": 11,
    "tests/unit/plugins/action/test_ledger_webhook.py": 10,
    "tests/unit/plugins/plugin_utils/test__tls.py": 10,
    "tests/lab/tests/test_model_certificates.py": 9,
    "tests/unit/plugins/action/test_certificate_export.py": 9,
    "tests/integration/test_inventory_role_cache.py": 8,
}
NEW_INTEGRATION_SECONDS = 120.0


def expected_seconds(path: str) -> float:
    """The expected time of the test file at ``path`` (relative to the rootdir, with forward slashes)."""
    if path in FILE_SECONDS:
        return FILE_SECONDS[path]
    return NEW_INTEGRATION_SECONDS if path.startswith("tests/integration/") else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sort the collected tests by their file's expected time, longest first (stable: a file's tests keep their
    order and stay together)."""
    root = config.rootpath

    def weight(item: pytest.Item) -> float:
        try:
            relative = item.path.relative_to(root).as_posix()
        except ValueError:
            return 0.0
        return -expected_seconds(relative)

    items.sort(key=weight)
