"""Rollups: what the dashboards, the stats API and the alerts read, built from the events table.

``engine`` adds, rebuilds and prunes every kind alike; a kind is a spec: ``events`` (event counts),
``users`` (distinct users and sessions, by version: ``distinct`` says how they are kept), ``api``
(HTTP requests) and ``aws_lambda`` (Lambda invocations). ``services`` follows the events
table and runs them.
"""

from ingest.rollups.services import events_final_through, rollups_prune, rollups_rebuild, rollups_update

__all__ = ["events_final_through", "rollups_prune", "rollups_rebuild", "rollups_update"]
