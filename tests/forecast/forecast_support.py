"""A hand-worked dataset for the forecast, and its figures worked out by hand.

Every image's first blob is its config. Sizes are chosen so each sum below reads at a glance.
The only lifecycle rule keeps each repository's newest tag (no regexp: every reading agrees).

  app/web     w2 (newest) MW2=[CW2 2_000, BASE, W2 20_000]     kept
              w1          MW1=[CW1 1_000, BASE, W1 10_000]     expires: MW1 freed
              w0          MS =[CS 9_000, BASE, S1 90_000]      expires, but mirror/web:keep keeps MS
              untagged    MU =[CU 800, U1 80_000, BASE]        already unreferenced
  mirror/web  keep        MS                                    kept
              old         MW2                                   expires, but app/web:w2 keeps MW2
  app/api     a2          MA2=[CA2 4_000, BASE, A2 40_000]     kept
              a1          MA1=[CA1 3_000, BASE, A1 30_000]     expires: MA1 freed
  app/multi   m2          index MJ -> MJ-amd=[CJ 700, BASE, I1 50_000], MI-arm   kept
              m1          index MI -> MI-amd=[CI1 500, BASE, I1], MI-arm=[CI2 600, I2 60_000]
                          expires: MI and MI-amd freed with CI1; I1 (MJ-amd) and MI-arm (MJ) stay
  bucket      an orphaned blob ORPHAN 7_777 (registry layout, no manifest): already unreferenced
              backup/readme.txt 5_000 (outside the registry layout): never counted

Manifest documents are stored at 1024 bytes (each is shorter; the emulator pads them).

  freed by deleting the expired tags:
    MW1: 1024 + 1_000 + 10_000            = 12_024
    MA1: 1024 + 3_000 + 30_000            = 34_024
    MI:  1024 (index) + 1024 (MI-amd) + 500 = 2_548
    total                                 = 48_596 (all of it in namespace app; mirror frees 0)
  already unreferenced: MU 1024 + 800 + 80_000 + ORPHAN 7_777 = 89_601
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from acr_gc import rules
from acr_gc.cloud import calls
from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.credentials import from_keys
from acr_gc.cloud.oss import OssClient
from acr_gc.cloud.registry import RegistryClient
from acr_gc.config import Config
from acr_gc.emulator.registry import blob_key
from acr_gc.tasks import inventory as inv
from emulator_kit import AK, SECRET

INSTANCE = "cri-fc"
BUCKET = "fc-bucket"
FREED = 48_596
FREED_BY_NAMESPACE = {"app": 48_596, "mirror": 0}
UNREFERENCED_BEFORE = 89_601
EXPIRED = {("app", "web", "w1"), ("app", "web", "w0"), ("mirror", "web", "old"), ("app", "api", "a1"),
           ("app", "multi", "m1")}


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


SIZES = {"BASE": 100_000, "CW1": 1_000, "W1": 10_000, "CW2": 2_000, "W2": 20_000, "CS": 9_000, "S1": 90_000,
         "CU": 800, "U1": 80_000, "CA1": 3_000, "A1": 30_000, "CA2": 4_000, "A2": 40_000,
         "CJ": 700, "I1": 50_000, "CI1": 500, "CI2": 600, "I2": 60_000}


def L(*names: str) -> list[str]:
    return [d(n) for n in names]


def tag(name: str, manifest: str, day: int, layers=(), children=None) -> dict:
    doc = {"tag": name, "digest": d(manifest), "updated": f"2024-05-{day:02d}T00:00:00Z", "layers": L(*layers)}
    if children:
        doc["children"] = children
    return doc


def handworked_dataset() -> dict:
    mi_arm = {"digest": d("MI-arm"), "platform": "linux/arm64", "layers": L("CI2", "I2")}
    return {
        "clock": "2024-06-01T00:00:00Z",
        "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
        "layers": {d(n): size for n, size in SIZES.items()},
        "instances": [{
            "instance_id": INSTANCE, "name": "forecast", "gc_whitelisted": True, "bucket": BUCKET,
            "namespaces": ["app", "mirror"],
            "repositories": [
                {"namespace": "app", "name": "web", "tags": [
                    tag("w2", "MW2", 20, ("CW2", "BASE", "W2")),
                    tag("w1", "MW1", 10, ("CW1", "BASE", "W1")),
                    tag("w0", "MS", 5, ("CS", "BASE", "S1"))],
                 "untagged": [{"digest": d("MU"), "layers": L("CU", "U1", "BASE")}]},
                {"namespace": "mirror", "name": "web", "tags": [
                    tag("keep", "MS", 21, ("CS", "BASE", "S1")),
                    tag("old", "MW2", 2, ("CW2", "BASE", "W2"))]},
                {"namespace": "app", "name": "api", "tags": [
                    tag("a2", "MA2", 20, ("CA2", "BASE", "A2")),
                    tag("a1", "MA1", 10, ("CA1", "BASE", "A1"))]},
                {"namespace": "app", "name": "multi", "tags": [
                    tag("m2", "MJ", 20, children=[
                        {"digest": d("MJ-amd"), "platform": "linux/amd64", "layers": L("CJ", "BASE", "I1")}, mi_arm]),
                    tag("m1", "MI", 10, children=[
                        {"digest": d("MI-amd"), "platform": "linux/amd64", "layers": L("CI1", "BASE", "I1")}, mi_arm])]},
            ],
            "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 1}],
        }],
        "buckets": [{"name": BUCKET, "extra_objects": [
            {"key": blob_key(d("ORPHAN")), "size": 7_777}, {"key": "backup/readme.txt", "size": 5_000}]}],
    }


# ---- clients and reads on the emulator ------------------------------------------------

FAST = calls.Backoff(base_s=0.05, cap_s=1.0, floor_s=0.01)


def make_config(emulator, tmp_path: Path) -> Config:
    return Config.model_validate({
        "target": {"instance_id": INSTANCE, "bucket": BUCKET, "acr_endpoint": emulator.acr_endpoint,
                   "oss_endpoint": emulator.oss_endpoint, "registry_endpoint": emulator.registry_endpoint},
        "api": {"qps": 1000, "retries": 3, "timeout_s": 10},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "freeze": {"principals": ["acs:ram::1001:user/pusher"]},
    })


def adapters(config: Config):
    creds = from_keys(AK, SECRET)
    acr = AcrClient(config.target, config.api, credentials=creds, backoff=FAST)
    oss = OssClient(config.target, config.api, credentials=creds, backoff=FAST)
    return acr, oss, RegistryClient(config.target, config.api, acr=acr, backoff=FAST)


def planned_tags(acr: AcrClient) -> pd.DataFrame:
    tags = inv.fetch_tags(acr, inv.fetch_repositories(acr), 4)
    return rules.plan(tags, inv.fetch_rules(acr))


def blob_frame(oss: OssClient) -> pd.DataFrame:
    objects = oss.list_objects(prefix="docker/registry/v2/blobs/")
    return pd.DataFrame({"key": [o.key for o in objects], "size": [o.size for o in objects]})
