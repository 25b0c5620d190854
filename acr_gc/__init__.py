"""acr-gc: safe, scheduled, measured storage reclamation for ACR Enterprise Edition.

Layout (everything lives under this one package so that installing acr-gc never puts a
top-level ``flows`` or ``tasks`` package into site-packages):

- ``acr_gc.flows``    Prefect flows (the pipeline a deployment runs)
- ``acr_gc.tasks``    Prefect tasks, one per pipeline step
- ``acr_gc.reports``  rendering of the storage-reclamation report
- ``acr_gc.cloud``    thin adapters over the vendor SDK clients (ACR, OSS)
- ``acr_gc.emulator`` a local ACR + OSS emulator speaking the real wire protocols
"""

__version__ = "0.1.0"
