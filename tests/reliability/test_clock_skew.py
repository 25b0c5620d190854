"""Clock skew on signatures: 14 minutes off is answered, 16 minutes off is refused as the real services refuse it.

What the real services do: ACR (POP, ACS3-HMAC-SHA256) refuses a request whose
``x-acs-date`` is more than 15 minutes from its clock with HTTP 400
``InvalidTimeStamp.Expired``; OSS refuses a signed date (``x-oss-date``, or ``Date``)
more than 15 minutes off with HTTP 403 ``RequestTimeTooSkewed``. The emulator checks
both against the REAL wall clock (its emulated clock is for dataset time and may fly
through days in a demo; the test dataset's clock is 2024, years from now): found so and
kept, with a ``clock_skew_s`` fault that puts the cloud's wall clock off this machine's.

The client's clock is skewed through the SDKs themselves: ACR with the ``x-acs-date``
header the tea client merges from ``RuntimeOptions.extends_parameters`` before signing;
OSS with the date oss2 signs (``x-oss-date``), and for the V4 signature acr-gc uses, with
the OSS gateway's own V4 signer and a chosen date, sent with httpx (the gateway always
dates a request itself). acr-gc's adapters cannot be handed a date, so for them the
emulator's clock is moved instead: each refusal must reach the operator as ONE line that
names the call and says "clock skew" (not "credentials rejected"), without retries.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import oss2
import pytest
import yaml
from alibabacloud_cr20181201 import models as cr
from alibabacloud_gateway_oss.client import Client as OssGateway
from alibabacloud_tea_openapi.exceptions import ClientException
from darabonba.runtime import ExtendsParameters, RuntimeOptions

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.credentials import reset_chain
from acr_gc.cloud.errors import ClockSkew
from acr_gc.cloud.oss import OssClient
from acr_gc.config import Config
from emulator_kit import AK, SECRET, make_acr_client

INSTANCE, BUCKET, REGION = "cri-skew", "skew-bucket", "cn-hangzhou"
DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "instances": [{"instance_id": INSTANCE, "name": "skew", "bucket": BUCKET, "namespaces": ["n"]}],
    "buckets": [{"name": BUCKET, "extra_objects": [{"key": "k", "size": 42}]}],
}
ROOT = Path(__file__).resolve().parents[2]
ACCEPTED = (timedelta(minutes=14), timedelta(minutes=-14))
REFUSED = (timedelta(minutes=16), timedelta(minutes=-16))


@pytest.fixture
def cloud(emulator):
    emulator.load(DATASET)
    return emulator


def acr_get_instance(emu, client_clock_off: timedelta):
    """GetInstance from an ACR SDK client whose clock is ``client_clock_off`` from the real one."""
    date = (datetime.now(timezone.utc) + client_clock_off).strftime("%Y-%m-%dT%H:%M:%SZ")
    runtime = RuntimeOptions(extends_parameters=ExtendsParameters(headers={"x-acs-date": date}), autoretry=False)
    return make_acr_client(emu.acr_endpoint).get_instance_with_options(
        cr.GetInstanceRequest(instance_id=INSTANCE), runtime)


def oss_v4_bucket_stat(emu, client_clock_off: timedelta) -> httpx.Response:
    """GetBucketStat signed OSS4-HMAC-SHA256 by the SDK's gateway signer at a skewed time."""
    date_time = (datetime.now(timezone.utc) + client_clock_off).strftime("%Y%m%dT%H%M%SZ")
    headers = {"x-oss-date": date_time, "x-oss-content-sha256": "UNSIGNED-PAYLOAD"}
    signature = OssGateway().get_signature_v4(BUCKET, "/", "GET", {"stat": ""}, dict(headers), date_time[:8],
                                              REGION, SECRET)
    headers["authorization"] = (f"OSS4-HMAC-SHA256 Credential={AK}/{date_time[:8]}/{REGION}/oss/aliyun_v4_request, "
                                f"Signature={signature}")
    return httpx.get(f"http://{emu.oss_endpoint}/{BUCKET}/?stat", headers=headers, trust_env=False, timeout=10)


def oss2_get_object(emu, client_clock_off: timedelta) -> bytes:
    """GetObject through oss2 (header signature V1), dated ``x-oss-date`` at a skewed time."""
    bucket = oss2.Bucket(oss2.Auth(AK, SECRET), f"http://{emu.oss_endpoint}", BUCKET)
    date = format_datetime(datetime.now(timezone.utc) + client_clock_off, usegmt=True)
    return bucket.get_object("k", headers={"x-oss-date": date}).read()


def test_acr_sdk_14_minutes_off_answered_16_off_refused_InvalidTimeStamp_Expired(cloud):
    for off in ACCEPTED:
        assert acr_get_instance(cloud, off).body.instance_id == INSTANCE
    for off in REFUSED:
        with pytest.raises(ClientException) as refused:
            acr_get_instance(cloud, off)
        assert (refused.value.status_code, refused.value.code) == (400, "InvalidTimeStamp.Expired")
        assert "InstanceId" not in refused.value.data


def test_oss_14_minutes_off_answered_16_off_refused_RequestTimeTooSkewed(cloud):
    for off in ACCEPTED:
        answer = oss_v4_bucket_stat(cloud, off)
        assert answer.status_code == 200 and "<Storage>42</Storage>" in answer.text
        assert oss2_get_object(cloud, off) == bytes(42)
    for off in REFUSED:
        answer = oss_v4_bucket_stat(cloud, off)
        assert answer.status_code == 403 and "<Code>RequestTimeTooSkewed</Code>" in answer.text
        assert "<Storage>" not in answer.text
        with pytest.raises(oss2.exceptions.ServerError) as refused:
            oss2_get_object(cloud, off)
        assert (refused.value.status, refused.value.code) == (403, "RequestTimeTooSkewed")


def test_skew_is_measured_against_real_time_not_the_emulated_clock(cloud):
    cloud.advance_clock(40)  # 40 emulated days later: real-time signatures still fresh
    assert acr_get_instance(cloud, timedelta()).body.instance_id == INSTANCE
    assert oss_v4_bucket_stat(cloud, timedelta()).status_code == 200


def config_for(emu, tmp_path: Path) -> dict:
    return {
        "target": {"region": REGION, "instance_id": INSTANCE, "bucket": BUCKET, "acr_endpoint": emu.acr_endpoint,
                   "oss_endpoint": emu.oss_endpoint, "credentials": "chain"},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(tmp_path / "out")},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
    }


def test_acr_gc_adapters_say_clock_skew_in_one_line_naming_the_call(cloud, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    reset_chain()  # the chain caches the first keys it found: another test's, in a shared process
    config = Config.model_validate(config_for(cloud, tmp_path))
    acr, oss = AcrClient(config.target, config.api), OssClient(config.target, config.api)

    cloud.set_faults(clock_skew_s=14 * 60)  # the cloud 14 minutes ahead of this machine: fine
    assert acr.get_instance().instance_id == INSTANCE
    assert oss.bucket_stat().storage_bytes == 42

    for skew in (16 * 60, -16 * 60):
        cloud.set_faults(clock_skew_s=skew)
        with pytest.raises(ClockSkew) as acr_refused:
            acr.get_instance()
        with pytest.raises(ClockSkew) as oss_refused:
            oss.bucket_stat()
        for refused, head in ((acr_refused, f"ACR GetInstance on {INSTANCE} failed: InvalidTimeStamp.Expired (400): "),
                              (oss_refused, f"OSS GetBucketStat on {BUCKET} failed: RequestTimeTooSkewed (403): ")):
            line = str(refused.value)
            assert line.startswith(head + "clock skew: this machine's clock is more than 15 minutes off"), line
            assert "\n" not in line and SECRET not in line
            assert refused.value.attempts == 1  # not retried: a retry would be refused the same way

    # what the operator sees: `acr-gc plan` stops at its first call with that one line
    cloud.set_faults(clock_skew_s=-16 * 60)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config_for(cloud, tmp_path)), encoding="utf-8")
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": AK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run([sys.executable, "-m", "acr_gc.cli", "plan", "--config", str(config_path)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"acr-gc: ACR GetInstance on {INSTANCE} failed: InvalidTimeStamp.Expired (400): "
                               "clock skew: "), lines[0]
    assert SECRET not in done.stderr + done.stdout
