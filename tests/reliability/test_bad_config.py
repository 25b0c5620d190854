"""A bad run configuration is refused by the loader with ONE line that names the field,
before any request to the cloud, any run folder and any Prefect call.

Every field of DESIGN section 10's config block is given a wrong type and a wrong value;
unknown keys are tried at every level; whole files that are no configuration at all
(empty, a list, broken syntax, a key given twice, not UTF-8, 20 MB, an endless device)
are tried too. Most cases go through ``load_config`` in this process (what every command
calls first); a representative few go through ``acr-gc plan`` and ``acr-gc run`` as
subprocesses against a live emulator, whose request counters prove that the cloud was not
even asked.
"""

from __future__ import annotations

import copy
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from acr_gc.config import ConfigError, load_config
from emulator_kit import new_emulator
from pipeline.pipeline_support import OPS_AK, OPS_SECRET, cli_env, run_cli

GOOD = {"target": {"instance_id": "cri-cfg", "bucket": "cri-cfg-storage"},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]}}
class _Missing:
    """The key is removed instead of set (a stable repr: test ids must match across workers)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def _with(path: str, value) -> dict:
    """GOOD with ``value`` at the dotted ``path`` (sections created as needed)."""
    config = copy.deepcopy(GOOD)
    *sections, key = path.split(".")
    node = config
    for section in sections:
        node = node.setdefault(section, {})
    if value is MISSING:
        del node[key]
    else:
        node[key] = value
    return config


# (field, bad value, a fragment the one line must contain besides the field's name).
# The first block: a wrong TYPE for every field; the second: a wrong VALUE.
WRONG_TYPES = [
    ("target", "cri-cfg", "valid dictionary"),
    ("target.region", 5, "valid string"),
    ("target.instance_id", 12345, "valid string"),
    ("target.bucket", ["a", "b"], "valid string"),
    ("target.acr_endpoint", 9101, "valid string"),
    ("target.oss_endpoint", {"host": "x"}, "valid string"),
    ("target.credentials", True, "valid string"),
    ("policy", ["apps/web:*"], "valid dictionary"),
    ("policy.allow_unregenerable", "apps/web:*", "valid list"),
    ("policy.regeneration_manifest", ["a.csv"], "path"),
    ("policy.accept_never_released", "maybe", "valid boolean"),
    ("freeze.principals", "*", "valid list"),
    ("freeze.hold_until", 5, "'gc_complete' or 'window_end'"),
    ("gc.driver", 1, "'emulator' or 'console'"),
    ("gc.timeout", [1], "timedelta"),
    ("gc.timeout", "soon", "timedelta"),
    ("gc.poll_interval", True, "not true/false"),
    ("gc.on_timeout", None, "'cancel' or 'leave'"),
    ("sampling.mode", 0, "'inline' or 'scheduled'"),
    ("sampling.interval", True, "not true/false"),
    ("sampling.day_length", "one day", "timedelta"),
    ("sampling.margin_days", True, "valid integer"),
    ("sampling.margin_days", 1.5, "valid integer"),
    ("sampling.window_days", "seven", "valid integer"),
    ("report.out_dir", 5, "path"),
    ("report.price_per_gb_month", "cheap", "valid number"),
    ("report.price_per_gb_month", True, "valid number"),
    ("report.currency", 156, "valid string"),
    ("ledger.url", 5, "valid string"),
    ("api.qps", "fast", "valid number"),
    ("api.concurrency", True, "valid integer"),
    ("api.retries", 2.5, "valid integer"),
    ("api.timeout_s", "30s", "valid number"),
]
WRONG_VALUES = [
    ("target.instance_id", MISSING, "Field required"),
    ("target.bucket", MISSING, "Field required"),
    ("target.instance_id", "", "instance id"),
    ("target.instance_id", "../../etc", "instance id"),  # it names a folder under out_dir
    ("target.bucket", "My Bucket", "bucket name"),
    ("target.bucket", "-storage", "bucket name"),
    ("target.bucket", "b" * 64, "bucket name"),
    ("target.region", "cn hangzhou", "region id"),
    ("target.region", "", "region id"),
    ("target.acr_endpoint", "https://cr.cn-hangzhou.aliyuncs.com", "host or host:port"),
    ("target.oss_endpoint", "127.0.0.1:99999", "host or host:port"),
    ("target.oss_endpoint", "oss.example.com/bucket", "host or host:port"),
    ("target.credentials", "env", "'chain' or 'block:<name>'"),
    ("target.credentials", "block:", "'chain' or 'block:<name>'"),
    ("target.credentials", "block: ", "'chain' or 'block:<name>'"),
    ("target.credentials", "block:Prod Keys", "'chain' or 'block:<name>'"),
    ("freeze.principals", [], "at least 1 item"),
    ("freeze.principals", [""], "empty principal"),
    ("freeze.principals", MISSING, "Field required"),  # no default: only the operator knows the writers
    ("freeze.principals", ["ci", "*"], "registry's own RAM role"),
    ("freeze.principals", ["acs:ram::1234567890:role/AliyunContainerRegistryCustomizedOSSBucketRole"],
     "registry's own service role"),
    ("freeze.hold_until", "forever", "'gc_complete' or 'window_end'"),
    ("gc.driver", "magic", "'emulator' or 'console'"),
    ("gc.timeout", -5, "negative"),
    ("gc.timeout", "-PT5S", "longer than zero"),
    ("gc.timeout", 0, "longer than zero"),
    ("gc.timeout", float("inf"), "finite"),
    ("gc.timeout", float("nan"), "finite"),
    ("gc.timeout", 1e300, "too long"),
    ("gc.poll_interval", 0, "longer than zero"),
    ("gc.poll_interval", "PT0S", "longer than zero"),
    ("gc.on_timeout", "ignore", "'cancel' or 'leave'"),
    ("sampling.mode", "daily", "'inline' or 'scheduled'"),
    ("sampling.interval", 0, "longer than zero"),
    ("sampling.day_length", "-P1D", "longer than zero"),
    ("sampling.margin_days", -1, "greater than or equal to 0"),
    ("sampling.window_days", -7, "greater than or equal to 0"),
    ("report.out_dir", "", "empty"),
    ("report.price_per_gb_month", -0.01, "greater than or equal to 0"),
    ("report.price_per_gb_month", float("inf"), "finite number"),
    ("report.price_per_gb_month", float("nan"), "finite number"),
    ("report.currency", "", "ISO 4217"),
    ("report.currency", "yuan", "ISO 4217"),
    ("ledger.url", "not a url", "database URL"),
    ("ledger.url", "", "database URL"),
    ("ledger.url", "nosuchdb://host/ledger", "unknown database"),
    ("ledger.url", "sqlite://ops@//var/ledger.db", "not a valid sqlite URL"),
    ("api.qps", 0, "greater than 0"),
    ("api.qps", -1, "greater than 0"),
    ("api.qps", float("inf"), "finite number"),
    ("api.concurrency", 0, "greater than or equal to 1"),
    ("api.retries", -1, "greater than or equal to 0"),
    ("api.timeout_s", 0, "greater than 0"),
]
UNKNOWN_KEYS = ["colour", "target.colour", "policy.colour", "freeze.colour", "gc.timout", "sampling.colour",
                "report.colour", "ledger.colour", "api.colour"]


def _write(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "field, value, fragment",
    WRONG_TYPES + WRONG_VALUES,
    ids=[f"type-{f}-{v!r}" for f, v, _ in WRONG_TYPES] + [f"value-{f}-{v!r}"[:60] for f, v, _ in WRONG_VALUES],
)
def test_each_bad_field_is_one_line_naming_it(tmp_path, field, value, fragment):
    path = _write(tmp_path, _with(field, value))
    message = _refusal(path)
    assert message.startswith(f"config {path}: {field}: "), message
    assert fragment in message, message


@pytest.mark.parametrize("field", UNKNOWN_KEYS)
def test_unknown_keys_are_refused_at_every_level(tmp_path, field):
    path = _write(tmp_path, _with(field, 1))
    message = _refusal(path)
    assert message.startswith(f"config {path}: {field}: unknown key"), message


def test_a_misspelt_key_is_answered_with_the_known_one(tmp_path):
    message = _refusal(_write(tmp_path, _with("gc.timout", "PT1H")))
    assert "did you mean 'timeout'?" in message, message


def test_a_ledger_url_with_a_password_is_never_echoed(tmp_path):
    message = _refusal(_write(tmp_path, _with("ledger.url", "postgresql+psycopg://ops:hunter2@db:port/ledger")))
    assert "ledger.url" in message and "hunter2" not in message, message


def test_a_ledger_url_with_a_password_is_refused_saying_to_use_pgpassword(tmp_path):
    """The config is the flow's parameter: a password in it would be stored and shown by
    Prefect. Refused by the loader, and by the CLI with exit 2 and one line."""
    url = "postgresql+psycopg://ops:hunter2@db-host:5432/ledger"
    path = _write(tmp_path, _with("ledger.url", url))
    message = _refusal(path)
    assert message.startswith(f"config {path}: ledger.url: holds a password"), message
    assert "PGPASSWORD or ~/.pgpass" in message and "hunter2" not in message, message
    assert load_config(_write(tmp_path, _with("ledger.url", "postgresql+psycopg://ops@db-host:5432/ledger"), "good.yaml"))
    done = run_cli(["plan", "--config", str(path)], cli_env(None))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"acr-gc: {message}"], done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_out_dir_that_is_a_file_or_lies_under_one(tmp_path):
    """A file where the report folder should go would fail the run after it changed the
    bucket (the report is written last); it is refused up front instead."""
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder", encoding="utf-8")
    for out_dir in (blocker, blocker / "monthly"):
        message = _refusal(_write(tmp_path, _with("report.out_dir", str(out_dir))))
        assert f"report.out_dir: {blocker} is a file, not a folder" in message, message


def test_sections_left_empty_mean_their_defaults(tmp_path):
    """``gc:`` with every key under it commented out is an operator's way to say
    "defaults"; YAML reads it as null, and null is taken as the section's defaults."""
    path = tmp_path / "config.yaml"
    path.write_text("target:\n  instance_id: cri-cfg\n  bucket: cri-cfg-storage\nfreeze:\n  principals: [ci]\ngc:\n#  timeout: PT1H\n"
                    "policy:\n", encoding="utf-8")
    config = load_config(path)
    assert config.gc.timeout.total_seconds() == 6 * 3600 and config.policy.allow_unregenerable == []


# (case, file bytes, fragment). Whole files that are no run configuration.
BAD_FILES = [
    ("empty", b"", "must be a mapping"),
    ("only-comments", b"# target:\n#   instance_id: x\n", "must be a mapping"),
    ("a-list", b"- target\n- gc\n", "must be a mapping"),
    ("a-string", b"cri-cfg\n", "must be a mapping"),
    ("syntax-error", b"target:\n  instance_id: [cri-cfg\n  bucket: x\n", "is not valid YAML at line"),
    ("tab-indent", b"target:\n\tinstance_id: cri-cfg\n", "is not valid YAML at line 2"),
    ("python-tag", b"target: !!python/object/apply:os.system ['true']\n", "is not valid YAML at line 1"),
    ("two-documents", b"target: {}\n---\ntarget: {}\n", "is not valid YAML at line 2"),
    ("duplicate-section", b"target:\n  instance_id: cri-cfg\n  bucket: b\ngc:\n  timeout: PT1H\n"
                          b"gc:\n  driver: console\n", "line 6: key 'gc' given twice"),
    ("duplicate-field", b"target:\n  instance_id: cri-cfg\n  bucket: b\ngc:\n  timeout: PT1H\n"
                        b"  timeout: PT2H\n", "line 6: key 'timeout' given twice"),
    ("latin-1", "target:\n  instance_id: cri-cfg\n  bucket: seau-\u00e9t\u00e9\n".encode("latin-1"),
     "is not UTF-8 text (byte 0xe9 at line 3)"),
    ("utf-16", "target: {}\n".encode("utf-16"), "is not UTF-8 text (byte 0xff at line 1)"),
]


@pytest.mark.parametrize("case, content, fragment", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_files_that_are_no_configuration(tmp_path, case, content, fragment):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    message = _refusal(path)
    assert message.startswith(f"config {path}"), message
    assert fragment in message, message


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Windows editors save UTF-8 with a BOM; it is no error of the operator's."""
    path = tmp_path / "config.yaml"
    path.write_bytes("\ufefftarget:\n  instance_id: cri-cfg\n  bucket: cri-cfg-storage\nfreeze:\n  principals: [ci]\n".encode("utf-8"))
    assert load_config(path).target.instance_id == "cri-cfg"


def test_alias_bomb_is_refused_without_expanding(tmp_path):
    """The YAML "billion laughs": nine levels of nine aliases would be 9^9 strings if expanded."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\ntarget: *a8\n", encoding="utf-8")
    started = time.monotonic()
    message = _refusal(path)
    assert time.monotonic() - started < 2, "the aliases were expanded"
    assert "unknown key" in message or "valid dictionary" in message, message


@pytest.mark.parametrize("source", ["20 MB", "/dev/zero"])
def test_oversized_input_is_refused_fast_and_small(tmp_path, source):
    """A run configuration is a few kilobytes; 20 MB (here a valid YAML list that the parser
    would take minutes and hundreds of MB to build) or an endless device is refused after
    reading at most 1 MiB."""
    if source == "/dev/zero":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "huge.yaml"
        entry = "  - apps/web:build-0000000000000*\n"
        path.write_text(_yaml_head() + "policy:\n allow_unregenerable:\n" + entry * (20_000_000 // len(entry)),
                        encoding="utf-8")
        assert path.stat().st_size >= 19_900_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = _refusal(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert message == f"config {path} is larger than 1 MiB: not a run configuration", message


def _yaml_head() -> str:
    return yaml.safe_dump(GOOD)


# ---- the same through the command line, against a live emulator --------------------------

DATASET = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": OPS_AK, "access_key_secret": OPS_SECRET, "principal": "uid-ops"}],
    "layers": {"sha256:" + "1" * 64: 1000},
    "instances": [{
        "instance_id": "cri-cfg", "name": "cri-cfg", "bucket": "cri-cfg-storage", "gc_whitelisted": True,
        "namespaces": ["apps"],
        "repositories": [{"namespace": "apps", "name": "web", "tags": [
            {"tag": f"t{i}", "digest": "sha256:" + str(i) * 64, "updated": f"2026-10-0{i}T00:00:00Z",
             "layers": ["sha256:" + "1" * 64]} for i in range(1, 4)]}],
        "lifecycle_rules": [{"scope": "INSTANCE", "retention_tag_count": 1}],
    }],
    "buckets": [{"name": "cri-cfg-storage", "versioning": "Enabled",
                 "lifecycle": [{"id": "nc", "prefix": "docker/", "noncurrent_days": 1}]}],
}


@pytest.fixture(scope="module")
def emu():
    with new_emulator(DATASET) as process:
        yield process


def _cli_config(emu, root: Path, **sections) -> dict:
    config = {
        "target": {"instance_id": "cri-cfg", "bucket": "cri-cfg-storage",
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(root / "out")},
        "ledger": {"url": f"sqlite:///{root / 'ledger.db'}"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def _spoil_timeout(emu, root):
    return yaml.safe_dump(_cli_config(emu, root, gc={"timeout": -30})).encode()


def _spoil_typo(emu, root):
    return yaml.safe_dump(_cli_config(emu, root, gc={"timout": "PT1H"})).encode()


def _spoil_out_dir(emu, root):
    (root / "out").write_text("a file where the reports should go", encoding="utf-8")
    return yaml.safe_dump(_cli_config(emu, root)).encode()


def _spoil_ledger(emu, root):
    return yaml.safe_dump(_cli_config(emu, root, ledger={"url": "postgresql://ops:hunter2@db:port/x"})).encode()


def _spoil_encoding(emu, root):
    return yaml.safe_dump(_cli_config(emu, root, report={"currency": "EUR"})).encode().replace(b"EUR", b"\xa4UR")


def _spoil_size(emu, root):
    return yaml.safe_dump(_cli_config(emu, root)).encode() + b"# padding\n" * 2_000_000


# (command, case, how to spoil a good config, fragment of the one line)
CLI_CASES = [
    ("plan", "negative-timeout", _spoil_timeout, "gc.timeout: a duration cannot be negative"),
    ("plan", "20-mb", _spoil_size, "is larger than 1 MiB"),
    ("run", "typo", _spoil_typo, "gc.timout: unknown key (did you mean 'timeout'?)"),
    ("run", "out-dir-is-a-file", _spoil_out_dir, "report.out_dir: "),
    ("run", "ledger-url", _spoil_ledger, "ledger.url: "),
    ("run", "not-utf-8", _spoil_encoding, "is not UTF-8 text (byte 0xa4 at line"),
]


@pytest.mark.slow
@pytest.mark.parametrize("command, case, spoil, fragment", CLI_CASES, ids=[f"{c[0]}-{c[1]}" for c in CLI_CASES])
def test_cli_bad_config_exit_2_one_line_and_no_request(emu, tmp_path, command, case, spoil, fragment):
    path = tmp_path / "config.yaml"
    path.write_bytes(spoil(emu, tmp_path))
    _assert_refused_before_anything(emu, tmp_path, [command, "--config", str(path)], f"config {path}", fragment)


@pytest.mark.slow
def test_cli_out_option_is_checked_like_the_config(emu, tmp_path):
    """``--out`` replaces report.out_dir after the file was validated: it gets the same check."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_cli_config(emu, tmp_path)), encoding="utf-8")
    blocker = tmp_path / "elsewhere"
    blocker.write_text("a file", encoding="utf-8")
    _assert_refused_before_anything(emu, tmp_path, ["plan", "--config", str(path), "--out", str(blocker / "out")],
                                    "--out: out_dir: ", f"{blocker} is a file, not a folder")


def _assert_refused_before_anything(emu, root: Path, args: list[str], prefix: str, fragment: str) -> None:
    """Exit 2, one line on stderr, nothing on stdout, no file made, not one request to the cloud."""
    before = emu.truth()
    entries_before = sorted(p.name for p in root.iterdir())

    result = run_cli(args, cli_env(None), timeout=60)

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"acr-gc: {prefix}"), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout and result.stdout == ""
    assert "hunter2" not in result.stderr
    assert sorted(p.name for p in root.iterdir()) == entries_before  # no run folder, no ledger
    after = emu.truth()
    assert after["request_counts"] == before["request_counts"]  # not one request to ACR or OSS
    assert after["instances"] == before["instances"] and after["buckets"] == before["buckets"]
