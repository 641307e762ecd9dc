# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The certificate stories of the fleet report: per renewed certificate, its ledger records in time order.

With fleet_report's ``ledger`` option the report tells, for every certificate identity the renewal role recorded
(``renewal_done`` / ``renewal_failed`` name it), the story ``_ledger.query_ledger`` assembles: requested, issued,
imported, bound, verified, removed, with who, when and where. :func:`load_stories` builds the model; the formats
render it only when the report has one, so a report without a ledger stays byte for byte what it was.

A line of the ledger that is not a record does not stop the report: it is skipped and counted, and every format
says so (``ledger_info`` is the tool that fails on it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import (
    LedgerQuery,
    SkippedLine,
    query_ledger,
    record_identity,
)

STORY_STEP_COLUMNS = ("identity", "time", "stage", "action", "result", "server", "who", "module", "plan_id",
                      "thumbprint", "detail")
"""The columns of exchange_pki_ledger.csv, one row per step of a story."""


@dataclasses.dataclass(frozen=True)
class CertificateStory:
    """One renewed certificate: its identity, its latest certificate (thumbprint, subject when the facts know
    it) and its steps (``_ledger.STORY_KEYS`` dictionaries) in time order."""

    identity: str
    thumbprint: str | None
    subject: str | None
    steps: tuple[Mapping[str, Any], ...]

    @property
    def stage(self) -> str:
        """The stage of the last step (where the certificate's life stands)."""
        return str(self.steps[-1]["stage"]) if self.steps else ""


@dataclasses.dataclass(frozen=True)
class LedgerStories:
    """The stories the report tells from one ledger file, and the lines of it that were not records."""

    path: str
    stories: tuple[CertificateStory, ...]
    skipped: tuple[SkippedLine, ...] = ()
    found: bool = True

    def note(self) -> str:
        """One sentence on where the stories come from (and what was skipped)."""
        count = len(self.stories)
        text = (f"{count} renewed certificate(s) in the ledger {self.path}" if self.found
                else f"no ledger file at {self.path} yet")
        if self.skipped:
            lines = ", ".join(str(item.line_number) for item in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            text += f"; {len(self.skipped)} line(s) that are not records were skipped (line {lines}{more})"
        return text


def _latest_thumbprint(steps: Sequence[Mapping[str, Any]]) -> str | None:
    for step in reversed(steps):
        if step["action"] in ("renewal_done", "renewal_failed"):
            value = step["after"].get("thumbprint")
            if isinstance(value, str) and value:
                return value
    return None


def load_stories(path: str, subjects: Mapping[str, str]) -> LedgerStories:
    """The stories of the certificate identities in the ledger at ``path`` (``subjects``: thumbprint -> subject,
    from the report's facts). Raises ``_ledger.LedgerError`` when the file cannot be read."""
    answer = query_ledger(path, LedgerQuery(), skip_invalid=True)
    identities = {record_identity(record) for record in answer.records}
    stories = []
    for key, steps in answer.stories.items():
        if key not in identities:
            continue  # a certificate no renewal named: not a renewed certificate
        thumbprint = _latest_thumbprint(steps)
        stories.append(CertificateStory(key, thumbprint, subjects.get(thumbprint or ""), tuple(steps)))
    return LedgerStories(path, tuple(stories), answer.skipped, found=os.path.lexists(path))


# --- what every format shows of a step ------------------------------------------------------------------------


def step_thumbprint(step: Mapping[str, Any]) -> str | None:
    """The certificate a step is about: the new one it made or bound, else the one it removed or requested."""
    after, before = step["after"], step["before"]
    for value in (after.get("thumbprint"), (after.get("certificate") or {}).get("thumbprint")
                  if isinstance(after.get("certificate"), Mapping) else None,
                  before.get("thumbprint")):
        if isinstance(value, str) and value:
            return value
    return None


def _names(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [str(key) for key in value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, (str, int))]
    return []


def step_detail(step: Mapping[str, Any]) -> str:
    """A short line on what the step did, beyond its action: services, removed certificates, the error."""
    after, before = step["after"], step["before"]
    parts = []
    request = after.get("pending_request")
    if step["action"] == "certificate_request" and isinstance(request, Mapping):
        subject, names = request.get("subject"), _names(request.get("dns_names"))
        parts.append(f"subject {subject}" if subject else "")
        parts.append(f"names {', '.join(names)}" if names else "")
    services = _names(after.get("services"))
    if services and step["action"] == "enable_services":
        parts.append(f"services {', '.join(services)}")
    removed = _names(after.get("removed"))
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    if after.get("step") and step["result"] == "failed":
        parts.append(f"step {after['step']}")
    if step["action"] == "remove" and before.get("store"):
        parts.append(f"from {before['store']}")
    message = step.get("message")
    if message:
        parts.append(str(message))
    return "; ".join(part for part in parts if part)


def story_rows(stories: Iterable[CertificateStory]) -> Iterable[dict[str, Any]]:
    """One flat row per step (the CSV's rows and the HTML tables' cells)."""
    for story in stories:
        for step in story.steps:
            yield {
                "identity": story.identity, "time": step["time"], "stage": step["stage"], "action": step["action"],
                "result": step["result"], "server": step["server"], "who": step["who"], "module": step["module"],
                "plan_id": step["plan_id"], "thumbprint": step_thumbprint(step), "detail": step_detail(step),
            }
