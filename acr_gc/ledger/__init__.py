"""The ledger: what each run planned, changed and measured, in SQL (SQLAlchemy).

Every change to the cloud is written here *before* it is made, so a crashed, killed or
cancelled run can be finished or undone by the next run or by ``acr-gc thaw``. SQLite
by default; a PostgreSQL URL in production (DESIGN section 11).

Every query lives in this package, as named functions grouped by what they hold:
:mod:`~acr_gc.ledger.runs` (and every change of a run's state), :mod:`~acr_gc.ledger.samples`,
:mod:`~acr_gc.ledger.gc_tasks`, :mod:`~acr_gc.ledger.freezes`, :mod:`~acr_gc.ledger.plans`,
:mod:`~acr_gc.ledger.approvals`, :mod:`~acr_gc.ledger.instance_lock`,
:mod:`~acr_gc.ledger.manifests`, :mod:`~acr_gc.ledger.readings`. Tasks, flows, reports and
the CLI call them and hold no SQL (tests/ledger/test_ledger_layering.py).
"""

from acr_gc.ledger.models import Base, Freeze, GcTask, InstanceLock, Run, RunPlan, Sample
from acr_gc.ledger.store import Ledger

__all__ = ["Base", "Freeze", "GcTask", "InstanceLock", "Ledger", "Run", "RunPlan", "Sample"]
