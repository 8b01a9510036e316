"""Incident mode: many certificates replaced before a deadline (models/incidents.py).

    selection.py  the filter and the preview (how many, which hosts, the price)
    service.py    start (the deposit reserved up front), pause, resume, the
                  incident's pass (retries, redeploys, revocations,
                  completion), progress and the report
    outcomes.py   what a run's end means for its certificate of the incident
    lifecycle.py  every change of an incident's status, each one guarded UPDATE

Nothing is imported here: renewal/run.py imports outcomes.py, and the service
imports renewal, so the package itself stays empty of either.
"""

