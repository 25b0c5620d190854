"""The ledger: what each run planned, changed and measured, in SQL (SQLAlchemy).

Every change to the cloud is written here *before* it is made, so a crashed, killed or
cancelled run can be finished or undone by the next run or by ``acr-gc thaw``. SQLite
by default; a PostgreSQL URL in production (DESIGN section 11).
"""

from acr_gc.ledger.models import Base, Freeze, GcTask, InstanceLock, Run, RunPlan, Sample
from acr_gc.ledger.store import Ledger

__all__ = ["Base", "Freeze", "GcTask", "InstanceLock", "Ledger", "Run", "RunPlan", "Sample"]
