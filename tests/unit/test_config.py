"""The config file: validation with path-precise problems, `${ENV}` substitution, model rule resolution."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamdrift.cli.main import main
from streamdrift.config import StreamdriftConfig, load_config, parse_config
from streamdrift.core.detectors import DetectorSpec
from streamdrift.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

MINIMAL = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
topics:
  input: [inference-events]
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env=env or {})
    return caught.value.problems


def test_shipped_example_config_is_valid() -> None:
    """The documented example works as it stands: every variable it uses has a default in the file."""
    path = CONFIGS / "streamdrift.yaml"
    config = load_config(path, env={})
    assert config.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert config.topics.input == ["inference-events"]
    assert config.config_version != "unversioned"
    broker = load_config(path, env={"KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092"})
    assert broker.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"


def test_docker_config_is_valid() -> None:
    """The container's config takes the broker and the state key from the environment, nothing else."""
    path = CONFIGS / "docker.yaml"
    environment = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "STREAMDRIFT_STATE_KEY": "compose-state-key-0123"}
    config = load_config(path, env=environment)
    assert config.kafka.bootstrap_servers == "kafka:9092"
    assert config.processing.state_key == "compose-state-key-0123"
    assert config.processing.guarantee == "exactly_once"
    assert (config.http.host, config.http.port) == ("0.0.0.0", 9308)
    # Neither has a default baked into the file: without them it is refused, naming both.
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.problems == [
        f"{path}: kafka.bootstrap_servers: environment variable KAFKA_BOOTSTRAP_SERVERS is not set",
        f"{path}: processing.state_key: environment variable STREAMDRIFT_STATE_KEY is not set",
    ]


def test_minimal_config_defaults() -> None:
    config = parse_config(MINIMAL, env={})
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.kafka.group_id == "streamdrift"
    assert config.topics.input == ["inference-events"]
    assert config.processing.guarantee == "exactly_once"
    assert config.processing.limits.max_record_bytes == 1_048_576
    assert config.models == []
    plan = config.policies().plan_for("any-model")
    for kind in ("prediction", "score", "error", "missing"):
        assert plan.signal(kind).enabled
        assert plan.signal(kind).detector == DetectorSpec.of("adwin")
    assert plan.feature("x").detector == DetectorSpec.of("adwin")
    # The version names the file's bytes: the same text, the same version; another text, another.
    assert config.config_version == parse_config(MINIMAL, env={}).config_version
    assert config.config_version != parse_config(MINIMAL + "\n# changed\n", env={}).config_version


def test_config_is_immutable() -> None:
    config = parse_config(MINIMAL, env={})
    with pytest.raises(ValueError, match="frozen"):
        config.kafka.group_id = "other"  # type: ignore[misc]


def test_load_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "streamdrift.yaml"
    path.write_text(MINIMAL)
    assert load_config(path, env={}).topics.input == ["inference-events"]


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert len(caught.value.problems) == 1
    assert "absent.yaml" in caught.value.problems[0]
    assert "cannot read" in caught.value.problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "the config must be a mapping"),
        ("kafka: [\n", "not valid YAML at line"),
        ("", "kafka: Field required"),
    ],
)
def test_not_a_config(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(expected in problem for problem in problems), problems


def test_unknown_keys_and_wrong_types_are_reported_with_their_paths() -> None:
    text = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
  request_timeout_ms: soon
  bootstrap: typo
topics:
  input: [events, events]
processing:
  guarantee: maybe
  commit_interval_ms: 5
  limits:
    max_json_depth: 0
defaults:
  features:
    enabled: perhaps
    cooldown: -1
models:
  - match: "fraud-*"
    colour: red
extra_section: {}
"""
    problems = problems_of(text)
    expected_paths = {
        "kafka.request_timeout_ms",
        "kafka.bootstrap",
        "topics.input",
        "processing.guarantee",
        "processing.commit_interval_ms",
        "processing.limits.max_json_depth",
        "defaults.features.enabled",
        "defaults.features.cooldown",
        "models[0].colour",
        "extra_section",
    }
    paths = {problem.removeprefix("<config>: ").split(": ")[0] for problem in problems}
    assert paths == expected_paths, problems
    assert "<config>: kafka.bootstrap: unknown key" in problems
    assert "<config>: extra_section: unknown key" in problems
    assert "<config>: models[0].colour: unknown key" in problems
    assert any(p.startswith("<config>: processing.guarantee: ") and "'maybe'" in p for p in problems)
    assert any(p.startswith("<config>: kafka.request_timeout_ms: ") and "'soon'" in p for p in problems)


def detector_problems(detector: str, where: str = "defaults") -> list[str]:
    if where == "defaults":
        body = f"defaults:\n  score:\n    detector: {detector}\n"
    else:
        body = f"models:\n  - match: 'm-*'\n    features:\n      amount:\n        detector: {detector}\n"
    return problems_of(MINIMAL + body)


@pytest.mark.parametrize(
    ("detector", "expected"),
    [
        (
            "{type: adwin, dleta: 0.01}",
            "defaults.score.detector: adwin has no parameter 'dleta' "
            "(it takes: delta, clock, max_buckets, min_window_length, grace_period)",
        ),
        (
            "{type: ddm, window: 10}",
            "defaults.score.detector: ddm has no parameter 'window' "
            "(it takes: warm_start, warning_threshold, drift_threshold)",
        ),
        (
            "{type: adwin, delta: 1.5}",
            "defaults.score.detector: adwin.delta must be a number between 0 and 1 (exclusive), got 1.5",
        ),
        ("{type: adwin, delta: .nan}", "defaults.score.detector: adwin.delta must be a number between 0"),
        (
            "{type: adwin, clock: true}",
            "defaults.score.detector: adwin.clock must be an integer > 0, got True",
        ),
        (
            "{type: page_hinkley, threshold: -1}",
            "defaults.score.detector: page_hinkley.threshold must be a number > 0, got -1",
        ),
        (
            "{type: page_hinkley, mode: sideways}",
            "defaults.score.detector: page_hinkley.mode must be 'up', 'down' or 'both', got 'sideways'",
        ),
        (
            "{type: kswin, window_size: 10, stat_size: 30}",
            "defaults.score.detector: kswin.window_size (10) must be at least twice stat_size (30)",
        ),
        ("{type: kswin, seed: 1.5}", "defaults.score.detector: kswin.seed must be an integer, got 1.5"),
        (
            "{type: hddm_a, two_sided_test: 1}",
            "defaults.score.detector: hddm_a.two_sided_test must be true or false, got 1",
        ),
        ("{type: fhddm, confidence_level: 0}", "defaults.score.detector: fhddm.confidence_level must be"),
        ("{type: isolation_forest}", "defaults.score.detector.type: Input should be 'adwin'"),
        ("{delta: 0.1}", "defaults.score.detector.type: Field required"),
    ],
)
def test_bad_detector_params_name_detector_parameter_and_path(detector: str, expected: str) -> None:
    problems = detector_problems(detector)
    assert len(problems) == 1, problems
    assert problems[0].startswith("<config>: " + expected), problems


@pytest.mark.parametrize(
    "detector",
    [
        "{type: eddm, alpha: 0.5, beta: 0.9}",  # River: 'alpha' must be >= 'beta'
        "{type: eddm, alpha: 0.85}",  # the same against River's default beta 0.9
        "{type: kswin, window_size: 50, stat_size: 30}",  # River samples stat_size of window - stat: crashes
        "{type: fhddm, sliding_window_size: 10, short_window_size: 20}",  # River: islice ValueError
    ],
)
def test_detector_params_river_cannot_run_are_config_errors(detector: str) -> None:
    assert len(detector_problems(detector)) == 1


def test_bad_detector_params_inside_a_model_rule() -> None:
    problems = detector_problems("{type: eddm, alpha: 2}", where="models")
    assert problems == [
        "<config>: models[0].features.amount.detector: eddm.alpha must be a number between 0 and 1 "
        "(exclusive), got 2"
    ]


def test_good_detector_params_are_kept_as_given() -> None:
    config = parse_config(
        MINIMAL
        + "defaults:\n  score:\n    detector: {type: kswin, alpha: 0.001, seed: 3, window_size: 200}\n",
        env={},
    )
    spec = config.policies().plan_for("m").signal("score").detector
    assert spec == DetectorSpec.of("kswin", alpha=0.001, seed=3, window_size=200)


def test_env_substitution() -> None:
    text = """
kafka:
  bootstrap_servers: ${BOOTSTRAP}
  sasl_plain_password: "${KAFKA_PASSWORD}"
  group_id: drift-${ENVIRONMENT:-dev}
topics:
  input: ["${TOPIC_PREFIX}-events", "other"]
processing:
  state_key: ${STATE_KEY}
"""
    env = {"BOOTSTRAP": "broker:9093", "KAFKA_PASSWORD": "s3cr$t}", "TOPIC_PREFIX": "prod", "STATE_KEY": "k"}
    config = parse_config(text, env=env)
    assert config.kafka.bootstrap_servers == "broker:9093"
    assert config.kafka.sasl_plain_password == "s3cr$t}"
    assert config.kafka.group_id == "drift-dev"
    assert config.topics.input == ["prod-events", "other"]
    assert config.processing.state_key == "k"
    assert parse_config(text, env={**env, "ENVIRONMENT": "prod"}).kafka.group_id == "drift-prod"


def test_missing_env_var_is_reported_with_its_path() -> None:
    text = MINIMAL.replace("127.0.0.1:9092", "${BOOTSTRAP}") + "processing:\n  state_key: ${STATE_KEY}\n"
    problems = problems_of(text, env={})
    assert problems == [
        "<config>: kafka.bootstrap_servers: environment variable BOOTSTRAP is not set",
        "<config>: processing.state_key: environment variable STATE_KEY is not set",
    ]


def test_env_values_are_not_yaml_parsed() -> None:
    """A substituted value is text, never more YAML: a secret cannot inject keys."""
    text = MINIMAL + "processing:\n  state_key: ${STATE_KEY}\n"
    config = parse_config(text, env={"STATE_KEY": "x\nextra: 1"})
    assert config.processing.state_key == "x\nextra: 1"


RULES = """
defaults:
  features:
    detector: {type: adwin, delta: 0.002}
  score:
    detector: {type: page_hinkley}
  error:
    detector: {type: ddm}
models:
  - match: "fraud-*"
    score:
      detector: {type: kswin, seed: 1}
    error:
      cooldown: 50
    features:
      "amount*": {detector: {type: page_hinkley, threshold: 20}}
      "amount_eur": {enabled: false}
      "*_id": {enabled: false}
  - match: "fraud-eu-*"
    score:
      detector: {type: adwin, delta: 0.01}
    features:
      "amount_usd": {cooldown: 7}
  - match: "churn"
    missing: {enabled: false}
"""


@pytest.fixture
def rules_config() -> StreamdriftConfig:
    return parse_config(MINIMAL + RULES, env={})


def test_defaults_apply_when_no_rule_matches(rules_config: StreamdriftConfig) -> None:
    plan = rules_config.policies().plan_for("ads-ranker")
    assert plan.signal("score").detector == DetectorSpec.of("page_hinkley")
    assert plan.signal("error").detector == DetectorSpec.of("ddm")
    assert plan.signal("error").cooldown == 0
    assert plan.feature("amount").detector == DetectorSpec.of("adwin", delta=0.002)
    assert plan.signal("missing").enabled


def test_glob_rule_overrides_defaults(rules_config: StreamdriftConfig) -> None:
    plan = rules_config.policies().plan_for("fraud-us-1")
    assert plan.signal("score").detector == DetectorSpec.of("kswin", seed=1)
    # A partial override keeps the rest: error keeps ddm, gains the cooldown.
    assert plan.signal("error").detector == DetectorSpec.of("ddm")
    assert plan.signal("error").cooldown == 50
    assert plan.signal("prediction").detector == DetectorSpec.of("adwin")


def test_later_rules_override_earlier_ones(rules_config: StreamdriftConfig) -> None:
    plan = rules_config.policies().plan_for("fraud-eu-1")  # matches fraud-* then fraud-eu-*
    assert plan.signal("score").detector == DetectorSpec.of("adwin", delta=0.01)
    assert plan.signal("error").cooldown == 50  # from the first rule, untouched by the second


def test_per_feature_globs(rules_config: StreamdriftConfig) -> None:
    fraud = rules_config.policies().plan_for("fraud-us-1")
    assert fraud.feature("amount").detector == DetectorSpec.of("page_hinkley", threshold=20)
    assert fraud.feature("amount_usd").detector == DetectorSpec.of("page_hinkley", threshold=20)
    assert fraud.feature("amount_usd").cooldown == 0
    assert not fraud.feature("amount_eur").enabled  # a later glob in the same rule overrides
    assert fraud.feature("amount_eur").detector == DetectorSpec.of("page_hinkley", threshold=20)
    assert not fraud.feature("customer_id").enabled
    assert fraud.feature("age").detector == DetectorSpec.of("adwin", delta=0.002)
    assert fraud.feature("age").enabled

    eu = rules_config.policies().plan_for("fraud-eu-1")
    usd = eu.feature("amount_usd")
    assert usd.detector == DetectorSpec.of("page_hinkley", threshold=20)  # from fraud-*
    assert usd.cooldown == 7  # from fraud-eu-*


def test_globs_are_case_sensitive_and_whole_id(rules_config: StreamdriftConfig) -> None:
    policies = rules_config.policies()
    assert policies.plan_for("Fraud-us").signal("score").detector == DetectorSpec.of("page_hinkley")
    assert policies.plan_for("churn").signal("missing").enabled is False
    assert policies.plan_for("churn-2").signal("missing").enabled is True


def test_config_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    out = capsys.readouterr().out
    schema: dict[str, Any] = orjson.loads(out)
    assert schema["type"] == "object"
    assert {"kafka", "topics", "processing", "fields", "defaults", "models", "logging"} <= set(
        schema["properties"]
    )
    assert set(schema["required"]) == {"kafka", "topics"}
    assert schema["additionalProperties"] is False
    # The detector types are listed where a detector is configured.
    assert re.search(r'"page_hinkley"', out)


# --- secrets --------------------------------------------------------------------------------------------

SECRET = "hunter2-correct-horse-battery"
KAFKA_LAST = "topics: {input: [events]}\nkafka:\n  bootstrap_servers: x:9092\n"  # add kafka keys below


def test_secrets_can_come_from_files_and_never_reach_the_clients_as_file_names(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")  # as `kubectl create secret` or an editor leaves it
    config = parse_config(
        f"""
kafka:
  bootstrap_servers: x:9092
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_plain_username: svc
  sasl_plain_password_file: {secret_file}
  ssl_password_file: {secret_file}
topics: {{input: [events]}}
processing: {{state_key_file: {secret_file}}}
"""
    )
    assert config.kafka.sasl_plain_password == config.kafka.ssl_password == SECRET
    assert config.processing.state_key == SECRET
    assert not {k for k in config.kafka.security() if k.endswith("_file")}


def test_a_secret_and_its_file_together_or_an_unreadable_file_are_errors(tmp_path: Path) -> None:
    both = problems_of(
        KAFKA_LAST + f"  sasl_plain_password: {SECRET}\n  sasl_plain_password_file: {tmp_path / 'x'}\n"
    )
    assert both == ["<config>: kafka: give sasl_plain_password or sasl_plain_password_file, not both"]
    missing = problems_of(KAFKA_LAST + f"  sasl_plain_password_file: {tmp_path / 'absent'}\n")
    absent = tmp_path / "absent"
    assert missing == [
        f"<config>: kafka: sasl_plain_password_file: cannot read {absent}: No such file or directory"
    ]


def test_errors_about_a_secret_never_echo_its_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(KAFKA_LAST + f"  sasl_plain_password: [{SECRET}]\n  request_timeout_ms: [{SECRET}]\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "kafka.sasl_plain_password: Input should be a valid string" in err
    assert "kafka.request_timeout_ms" in err and "got" in err  # other values are echoed, for context
    assert err.count(SECRET) == 1  # only in the request_timeout_ms line
    assert SECRET not in next(line for line in err.splitlines() if "sasl_plain_password" in line)


@pytest.mark.parametrize(
    "text",
    [
        # A section of the wrong type: its content would be echoed as the value that was wrong.
        f"topics: {{input: [events]}}\nkafka:\n  - bootstrap_servers: x:9092\n"
        f"    sasl_plain_password: {SECRET}\n",
        f"topics: {{input: [events]}}\nkafka: 'bootstrap_servers: x:9092, ssl_password: {SECRET}'\n",
        KAFKA_LAST + f"processing: [{{state_key: {SECRET}}}]\n",
        # A secret of the wrong type.
        KAFKA_LAST + f"  ssl_password: [{SECRET}]\n",
        KAFKA_LAST + f"processing: {{state_key: {{value: {SECRET}}}}}\n",
        # A secret next to other mistakes.
        KAFKA_LAST + f"  sasl_plain_password: {SECRET}\n  sasl_plain_password_file: /x\n  retries: 3\n",
        KAFKA_LAST + "  ssl_password: ${TLS_KEY_PASSWORD}\n  ssl_check_hostname: maybe\n",
        # Not even YAML.
        f"kafka: {{sasl_plain_password: {SECRET}\ntopics: [\n",
    ],
)
def test_no_config_error_echoes_a_secret(
    text: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLS_KEY_PASSWORD", SECRET)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["config", "validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"streamdrift: {path}: ")
    assert "hunter2" not in out + err


def test_standardize_takes_a_reference_mean_and_std_or_a_warm_up_never_both() -> None:
    base = MINIMAL + "defaults:\n  features:\n    detector: {type: page_hinkley}\n"
    given = parse_config(base + "    standardize: {mean: 3.5, std: 1.2}\n", env={})
    policy = given.policies().defaults["features"]
    assert policy.standardize is not None and policy.standardize.key() == (3.5, 1.2, 0)
    learned = parse_config(base + "    standardize: {warmup: 1000}\n", env={})
    learned_policy = learned.policies().defaults["features"]
    assert learned_policy.standardize is not None and learned_policy.standardize.key() == (None, None, 1000)
    for bad in ("{mean: 1.0}", "{mean: 1.0, std: 2.0, warmup: 10}", "{}", "{mean: 0, std: 0}"):
        assert any("standardize" in p for p in problems_of(base + f"    standardize: {bad}\n")), bad


def test_standardize_is_refused_for_binary_detectors() -> None:
    problems = problems_of(
        MINIMAL + "defaults:\n  error:\n    detector: {type: ddm}\n    standardize: {warmup: 100}\n"
    )
    assert problems == [
        "<config>: defaults.error: standardize needs a numeric detector (ddm reads 0/1 values)"
    ]


# --- the Kafka client and its connection settings -------------------------------------------------------


def test_the_kafka_client_is_kafka_python_unless_confluent_is_chosen() -> None:
    assert parse_config(MINIMAL, env={}).kafka.client == "kafka-python"
    chosen = parse_config(MINIMAL.replace("kafka:\n", "kafka:\n  client: confluent\n"), env={})
    assert chosen.kafka.client == "confluent"
    assert "client" not in chosen.kafka.security()  # not a kafka-python argument


@pytest.mark.parametrize("client", ["librdkafka", "Confluent", "kafka_python", "[confluent]"])
def test_an_unknown_kafka_client_is_one_config_error(client: str) -> None:
    problems = problems_of(KAFKA_LAST + f"  client: {client!r}\n")
    expected = f"<config>: kafka.client: Input should be 'kafka-python' or 'confluent' (got {client!r})"
    assert problems == [expected]


SECURE_KAFKA = """
kafka:
  bootstrap_servers: [broker-1:9093, broker-2:9093]
  client_id: drift-eu
  group_id: drift
  client: confluent
  security_protocol: SASL_SSL
  ssl_cafile: /etc/streamdrift/ca.pem
  ssl_certfile: /etc/streamdrift/client.pem
  ssl_keyfile: /etc/streamdrift/client.key
  ssl_password: key-secret
  ssl_check_hostname: false
  sasl_mechanism: SCRAM-SHA-512
  sasl_plain_username: svc
  sasl_plain_password: sasl-secret
  request_timeout_ms: 15000
topics: {input: [events]}
"""


def test_kafka_python_gets_the_connection_settings_as_its_keyword_arguments() -> None:
    assert parse_config(SECURE_KAFKA, env={}).kafka.security() == {
        "bootstrap_servers": ["broker-1:9093", "broker-2:9093"],
        "security_protocol": "SASL_SSL",
        "ssl_cafile": "/etc/streamdrift/ca.pem",
        "ssl_certfile": "/etc/streamdrift/client.pem",
        "ssl_keyfile": "/etc/streamdrift/client.key",
        "ssl_password": "key-secret",
        "ssl_check_hostname": False,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "sasl-secret",
        "request_timeout_ms": 15000,
    }
    assert parse_config(MINIMAL, env={}).kafka.security() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
        "ssl_check_hostname": True,
        "request_timeout_ms": 30000,
    }


def test_librdkafka_gets_the_same_connection_settings_as_its_properties() -> None:
    assert parse_config(SECURE_KAFKA, env={}).kafka.librdkafka() == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "client.id": "drift-eu",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/streamdrift/ca.pem",
        "ssl.certificate.location": "/etc/streamdrift/client.pem",
        "ssl.key.location": "/etc/streamdrift/client.key",
        "ssl.key.password": "key-secret",
        "ssl.endpoint.identification.algorithm": "none",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "sasl-secret",
        "socket.timeout.ms": "15000",
    }


def test_librdkafka_properties_leave_unset_settings_to_librdkafka() -> None:
    assert parse_config(MINIMAL, env={}).kafka.librdkafka() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "client.id": "streamdrift",
        "security.protocol": "PLAINTEXT",
        "ssl.endpoint.identification.algorithm": "https",  # kafka-python checks the host name by default
        "socket.timeout.ms": "30000",
    }


def test_librdkafka_properties_carry_secrets_read_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    config = parse_config(
        KAFKA_LAST + f"  sasl_plain_password_file: {secret_file}\n  ssl_password_file: {secret_file}\n"
    )
    properties = config.kafka.librdkafka()
    assert properties["sasl.password"] == properties["ssl.key.password"] == SECRET
    assert not {name for name, value in properties.items() if value == str(secret_file)}
