"""acr-gc: safe, scheduled, measured storage reclamation for ACR Enterprise Edition.

Layout (everything lives under this one package so that installing acr-gc never puts a
top-level ``flows`` or ``tasks`` package into site-packages):

- ``acr_gc.flows``    Prefect flows (the pipeline a deployment runs)
- ``acr_gc.tasks``    Prefect tasks, one per pipeline step
- ``acr_gc.reports``  rendering of the storage-reclamation report
- ``acr_gc.cloud``    thin adapters over the vendor SDK clients (ACR, OSS)
- ``acr_gc.emulator`` a local ACR + OSS emulator speaking the real wire protocols
"""

import os

# The steps log through module loggers (acr_gc.*). Prefect forwards those to the flow
# run's logs in the dashboard only when they are named as extra loggers, a setting read
# when Prefect configures logging — so it is set here, before the CLI imports Prefect;
# deployments set the same in prefect.yaml's job variables. Outside a flow run (e.g.
# `acr-gc thaw`) the lines go to the console only, without a warning about it.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "acr_gc")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

__version__ = "0.1.0"
