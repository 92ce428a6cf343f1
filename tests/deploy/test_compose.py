"""deploy/compose.yaml stays valid and in step with the code, without a Docker engine.

Needs PyYAML, which is not a project dependency: `uv run --with pyyaml pytest tests/deploy`.
The last test also runs `docker compose config` where the compose CLI plugin is installed.
"""

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from services.account.adapters.dovecot_passwd import BUCKET_DIGITS, BUCKETS
from services.account.settings import AccountSettings
from shared.auth import generate_keypair
from shared.registry import SERVICES as REGISTRY

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: uv run --with pyyaml pytest tests/deploy")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ACCOUNT_ENV = SERVICES["account"]["environment"]

SECRET_NAME = re.compile(r"PASSWORD|_PASS$|SECRET|PRIVATE_KEY|TOKEN|API_KEY|NONCE", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")

PRIVATE_KEY, PUBLIC_KEY = generate_keypair()
DEPLOYER_ENV = {
    "RABBITMQ_ADMIN_PASSWORD": "5f1c0e2a9b7d4c3e8a6f1b2d",
    "BROKER_ACCOUNT_PASSWORD": "6a2d1f3b0c8e5d4f9b7a2c1e",
    "BROKER_MAILCTL_PASSWORD": "7b3e2a4c1d9f6e5a0c8b3d2f",
    "BROKER_HEALTH_PASSWORD": "8c4f3b5d2e0a7f6b1d9c4e3a",
    "BROKER_RULES_PASSWORD": "9d5a4c6e3f1b8a7c2e0d5f4b",
    "MONGO_RULES_PASSWORD": "0e6b5d7f4a2c9b8d3f1e6a5c",
    "MONGO_COPYJOB_PASSWORD": "1f7c6e8a5b3d0c9e4a2f7b6d",
    "BROKER_COPYJOB_PASSWORD": "2a8d7f9b6c4e1d0f5b3a8c7e",
    "MONGO_NOTIFIER_PASSWORD": "3b9e8a0c7d5f2e1a6c4b9d8f",
    "BROKER_NOTIFIER_PASSWORD": "4c0f9b1d8e6a3f2b7d5c0e9a",
    "COPY_SECRET_KEY": "ZmVybmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU=",
    "MONGO_ROOT_PASSWORD": "0b9e8d7c6a5f4e3d2c1b0a9f",
    "MONGO_ACCOUNT_PASSWORD": "7a6b5c4d3e2f1a0b9c8d7e6f",
    "SESSION_PRIVATE_KEY": PRIVATE_KEY,
    "SESSION_PUBLIC_KEY": PUBLIC_KEY,
    "BOOTSTRAP_ADMIN_PASSWORD": "Admin-Passphrase-4821",
    "BOOTSTRAP_ADMIN_DOMAINS": '["example.jp", "example.com"]',
    "DOVECOT_MASTER_PASSWORD": "3c2b1a0f9e8d7c6b5a4f3e2d",
    "POSTFIX_RELAYHOST": "[smtp.example.jp]:25",
    "POSTFIX_SRS_DOMAIN": "srs.example.jp",
    "POSTFIX_SRS_SECRET": "2f3e4d5c6b7a8f9e0d1c2b3a",
    "MAIL_POLICY_API_KEY": "9d8c7b6a5f4e3d2c1b0a9f8e",
    "MAIL_POLICY_HASH_NONCE": "1a2b3c4d5e6f7a8b9c0d1e2f",
}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution, for the forms compose.yaml uses."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        unset = value is None or (value == "" and op in (":-", ":?"))
        if not unset:
            return value
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return REFERENCE.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def interpolated(node, env: dict[str, str]):
    """The parsed file with variables substituted in its values, as compose does after parsing."""
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def optional_secrets(text: str) -> list[str]:
    """References to secret-looking variables that compose would let through unset."""
    return [
        match[0] for match in REFERENCE.finditer(text.replace("$$", ""))
        if SECRET_NAME.search(match["name"]) and not (match["op"] == ":?" and match["arg"].strip())
    ]


def dependencies(service: dict) -> dict:
    depends_on = service.get("depends_on", {})
    return depends_on if isinstance(depends_on, dict) else {name: None for name in depends_on}


ONE_SHOT = {"broker-setup"}
"""runs once and exits: others wait for it to complete, not to be healthy"""


def test_every_service_has_a_healthcheck():
    """Ensure each long-running service declares a healthcheck that runs something."""
    for name, service in SERVICES.items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck", {})
        assert not check.get("disable"), name
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_dependencies_wait_until_healthy():
    """Ensure every depends_on waits for the dependency's healthcheck, on services that exist."""
    for name, service in SERVICES.items():
        for dependency, condition in dependencies(service).items():
            assert dependency in SERVICES, (name, dependency)
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": wanted}, (name, dependency)
    assert set(dependencies(SERVICES["account"])) == {"mongo", "rabbitmq", "broker-setup", "dovecot", "otel-collector"}


def test_broker_setup_gives_every_principal_its_password():
    """Ensure the one-shot broker setup runs the provisioning with a password for every principal."""
    from shared.broker_access import ADMIN, CLIENTS, HEALTH

    setup = SERVICES["broker-setup"]
    assert setup["command"] == ["python", "-m", "shared.broker_access", "provision"]
    wanted = {f"BROKER_PASSWORD_{p.upper()}" for p in (ADMIN, HEALTH, *CLIENTS, *REGISTRY)}
    assert wanted <= set(setup["environment"])


def test_secret_checker_flags_optional_or_defaulted_secrets():
    """Ensure the secret check below would catch a defaulted, optional or silent secret."""
    bad = "A: ${DB_PASSWORD:-changeme}\nB: ${API_TOKEN}\nC: ${KEY_SECRET:?}\nD: $${X_PASSWORD}\n"
    assert optional_secrets(bad) == ["${DB_PASSWORD:-changeme}", "${API_TOKEN}", "${KEY_SECRET:?}"]
    assert optional_secrets("E: ${SESSION_PRIVATE_KEY:?set it}") == []


def test_secrets_are_required_with_a_message():
    """Ensure every secret is `${NAME:?message}`: compose refuses to start without it."""
    assert optional_secrets(COMPOSE_TEXT) == []
    secrets = {m["name"] for m in REFERENCE.finditer(COMPOSE_TEXT) if SECRET_NAME.search(m["name"])}
    assert secrets >= {
        "RABBITMQ_ADMIN_PASSWORD", "BROKER_ACCOUNT_PASSWORD", "MONGO_ROOT_PASSWORD", "MONGO_ACCOUNT_PASSWORD", "SESSION_PRIVATE_KEY",
        "BOOTSTRAP_ADMIN_PASSWORD", "DOVECOT_MASTER_PASSWORD", "MAIL_POLICY_API_KEY", "MAIL_POLICY_HASH_NONCE",
    }


def test_no_secret_is_written_in_the_file():
    """Ensure secret-looking environment entries and URL passwords come from variables."""
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert REFERENCE.fullmatch(str(value)), (name, key)
    for key in ("AMQP_URL", "MONGODB_URL"):
        credentials = re.match(r"\w+://(\$\{[^}]*\}|[^:@/]+):(\$\{[^}]*\}|[^@/]*)@", ACCOUNT_ENV[key])
        assert REFERENCE.fullmatch(credentials[2]), key


def test_compose_refuses_to_start_without_secrets():
    """Ensure interpolation fails while a required secret is unset."""
    with pytest.raises(KeyError, match="MONGO_ROOT_PASSWORD: set MONGO_ROOT_PASSWORD"):
        interpolated(COMPOSE, {})
    for secret in DEPLOYER_ENV:
        with pytest.raises(KeyError, match=secret):
            interpolated(COMPOSE, {key: value for key, value in DEPLOYER_ENV.items() if key != secret})


def test_account_environment_names_are_settings_fields():
    """Ensure the account service gets only settings it knows, and every required one."""
    fields = AccountSettings.model_fields
    names = {key.lower() for key in ACCOUNT_ENV}
    assert names <= set(fields), names - set(fields)
    required = {name for name, field in fields.items() if field.is_required()}
    assert required <= names, required - names


def test_account_environment_makes_valid_settings(monkeypatch):
    """Ensure the interpolated environment validates as AccountSettings with the intended values."""
    for key, value in interpolated(ACCOUNT_ENV, DEPLOYER_ENV).items():
        monkeypatch.setenv(key, str(value))
    settings = AccountSettings()
    assert settings.otel_exporter == "otlp"
    assert settings.bootstrap_admin_login == "admin"
    assert settings.bootstrap_admin_domains == ("example.jp", "example.com")
    assert settings.session_public_key == PUBLIC_KEY
    assert settings.command_shards == 4
    mongo_url = urlsplit(settings.mongodb_url.get_secret_value())
    assert mongo_url.path == f"/{settings.mongodb_db}"
    assert parse_qs(mongo_url.query)["replicaSet"] == ["rs0"]


def test_passwd_files_land_where_dovecot_reads_them():
    """Ensure the account service writes passwd files into the folder Dovecot's passdb reads."""
    passwd_dir = ACCOUNT_ENV["DOVECOT_PASSWD_DIR"]
    assert f"dovecot-passwd:{passwd_dir}" in SERVICES["account"]["volumes"]
    assert f"dovecot-passwd:{passwd_dir}" in SERVICES["dovecot"]["volumes"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instance = re.search(r"sed 's\|@RUN@\|([^|]+)\|g'", dockerfile)[1]
    template = (DEPLOY / "dovecot" / "dovecot.conf.in").read_text()
    assert f"@RUN@/passwd.d/%{BUCKET_DIGITS}.{BUCKETS}Nu" in template
    assert passwd_dir == f"{instance}/passwd.d"
    entrypoint = (DEPLOY / "dovecot" / "compose" / "entrypoint.sh").read_text()
    assert f"RUN={instance}\n" in entrypoint


def test_the_account_service_reaches_the_homes_dovecot_uses():
    """Ensure the account service sees the mail volume at the path Dovecot does (the passwd lines name
    homes by that path, and the service removes a deleted account's home there)."""
    mail_dir = ACCOUNT_ENV["DOVECOT_MAIL_DIR"]
    assert f"dovecot-mail:{mail_dir}" in SERVICES["account"]["volumes"]
    assert f"dovecot-mail:{mail_dir}" in SERVICES["dovecot"]["volumes"]


def test_dovecot_healthcheck_probes_the_configured_ports():
    """Ensure the Dovecot healthcheck knocks on the ports of dovecot.conf.in's listeners."""
    template = (DEPLOY / "dovecot" / "dovecot.conf.in").read_text()
    ports = {
        name: re.search(rf"inet_listener {name} \{{[^}}]*port = (\d+)", template)[1]
        for name in ("imap", "lmtp", "sieve")
    }
    check = (DEPLOY / "dovecot" / "compose" / "healthcheck.sh").read_text()
    for name, port in ports.items():
        assert re.search(rf"greets {port} ", check), name


def test_dovecot_trusts_exactly_the_compose_network():
    """Ensure login_trusted_networks is the compose network's subnet, whatever it is set to."""
    subnet = COMPOSE["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert SERVICES["dovecot"]["environment"]["DOVECOT_TRUSTED_NETWORKS"] == subnet
    for name, service in SERVICES.items():
        assert service["networks"] == ["backend"], name
    assert "ports" not in SERVICES["dovecot"]


def test_rabbitmq_container_config_follows_the_local_one():
    """Ensure the container broker has the local plugins and settings, minus the loopback listener."""
    local_plugins = set(re.findall(r"\w+", (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()))
    container_plugins = set(re.findall(r"\w+", COMPOSE["configs"]["rabbitmq-plugins"]["content"]))
    assert local_plugins <= container_plugins
    assert "rabbitmq_management" in container_plugins  # operators watch queues through it
    local = (DEPLOY / "rabbitmq" / "rabbitmq.conf.in").read_text()
    container = COMPOSE["configs"]["rabbitmq-conf"]["content"]
    assert re.search(r"^consumer_timeout = (\d+)", local, re.M)[1] == \
        re.search(r"^consumer_timeout = (\d+)", container, re.M)[1]
    assert "listeners.tcp" not in container and "127.0.0.1" not in container
    mounted = {c["source"]: c["target"] for c in SERVICES["rabbitmq"]["configs"]}
    assert mounted["rabbitmq-plugins"] == "/etc/rabbitmq/enabled_plugins"
    assert mounted["rabbitmq-conf"].startswith("/etc/rabbitmq/conf.d/")


def test_mongo_creates_the_user_the_account_service_logs_in_as():
    """Ensure mongo-init.js makes the user, database and password variable that MONGODB_URL uses."""
    script = (DEPLOY / "mongo-init.js").read_text()
    users = re.findall(r"\{ user: '(\w+)', db: '(\w+)', passwordVariable: '(\w+)' \}", script)
    password_variable = REFERENCE.search(ACCOUNT_ENV["MONGODB_URL"])["name"]
    url = urlsplit(interpolated(ACCOUNT_ENV["MONGODB_URL"], DEPLOYER_ENV))
    user = url.username
    database = ACCOUNT_ENV["MONGODB_DB"]
    assert (user, database, password_variable) in users
    assert url.path == f"/{database}" and parse_qs(url.query)["authSource"] == [database]
    assert password_variable in SERVICES["mongo"]["environment"]
    replica_set = re.search(r"_id: '(\w+)', members: \[\{ _id: 0, host: '([\w.-]+):27017' \}\]", script)
    assert parse_qs(url.query)["replicaSet"] == [replica_set[1]]
    assert f"--replSet {replica_set[1]} " in SERVICES["mongo"]["command"][-1]
    assert replica_set[2] in SERVICES  # the member's host name is what the services resolve


def test_traces_flow_from_the_service_through_the_collector_to_jaeger():
    """Ensure the OTLP endpoint is the collector's HTTP receiver and the collector exports to Jaeger."""
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    endpoint = urlsplit(ACCOUNT_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"])
    receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert endpoint.hostname == "otel-collector" and endpoint.hostname in SERVICES
    assert receiver == f"0.0.0.0:{endpoint.port}"
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert collector["exporters"][exporter]["endpoint"].partition(":")[0] in SERVICES
    health = collector["extensions"]["health_check"]["endpoint"]
    assert f"http://{health}/" in SERVICES["otel-collector"]["healthcheck"]["test"]


def test_files_the_compose_file_and_dockerfile_name_exist():
    """Ensure bind mounts, COPY sources and build targets point at things that exist."""
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), (name, source)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        *sources, _target = [part for part in line.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    for name, service in SERVICES.items():
        if "build" in service:
            assert service["build"]["target"] in targets, name
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_every_registered_service_runs_in_compose_with_the_kit_healthcheck():
    """Ensure compose runs exactly the registry's services, each by its module, checked by the kit's health command,
    and gives each only environment names its settings class knows."""
    for entry in REGISTRY.values():
        service = SERVICES[entry.name]
        assert service["command"] == ["python", "-m", entry.module], entry.name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "shared.health", entry.name], entry.name
        module, _, name = entry.settings.partition(":")
        fields = {field.upper() for field in getattr(importlib.import_module(module), name).model_fields}
        assert set(service["environment"]) <= fields, (entry.name, set(service["environment"]) - fields)
    app_services = {name for name, service in SERVICES.items() if service.get("image", "").startswith("mailss/app")}
    assert app_services == set(REGISTRY) | ONE_SHOT


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("the docker compose CLI plugin is not installed")
    return [docker, "compose", "-f", str(DEPLOY / "compose.yaml")]


def test_docker_compose_accepts_the_file(tmp_path):
    """Ensure `docker compose config` accepts the file with secrets set, and refuses it without."""
    compose = _docker_compose()
    env_file = tmp_path / "deploy.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in DEPLOYER_ENV.items()))
    empty = tmp_path / "empty.env"
    empty.write_text("")
    referenced = {match["name"] for match in REFERENCE.finditer(COMPOSE_TEXT)}
    clean_env = {key: value for key, value in os.environ.items() if key not in referenced}
    accepted = subprocess.run([*compose, "--env-file", str(env_file), "config", "-q"],
                              capture_output=True, text=True, env=clean_env)
    assert accepted.returncode == 0, accepted.stderr
    refused = subprocess.run([*compose, "--env-file", str(empty), "config", "-q"],
                             capture_output=True, text=True, env=clean_env)
    assert refused.returncode != 0
    assert "required variable" in refused.stderr


def test_postfix_templates_are_fully_rendered_locally_and_in_compose():
    """Ensure every @TOKEN@ of the Postfix templates is replaced both by scripts/stack.sh and by the
    compose entrypoint, so local, CI and compose run the same configuration."""
    tokens = set()
    for name in ("main.cf.in", "master.cf", "header_checks", "smtp_header_checks", "forward_domain"):
        tokens |= set(re.findall(r"@([A-Z_]+)@", (DEPLOY / "postfix" / name).read_text()))
    local = (DEPLOY.parent / "scripts" / "stack.sh").read_text()
    compose = (DEPLOY / "postfix" / "compose" / "entrypoint.sh").read_text()
    for token in tokens:
        assert f"s|@{token}@|" in local, token
        assert f"s|@{token}@" in compose, token
    assert SERVICES["dovecot"]["environment"]["DOVECOT_SUBMISSION_HOST"] == "postfix:10588"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for table in ("header_checks", "smtp_header_checks", "forward_domain"):
        assert f"deploy/postfix/{table}" in dockerfile and table in compose, table


def test_the_rules_service_and_postfix_share_the_forwarding_map():
    """Ensure the map the rules service writes is the one Postfix's main.cf reads, on one volume."""
    rules, postfix = SERVICES["rules"], SERVICES["postfix"]
    table = rules["environment"]["POSTFIX_FORWARD_MAP"]
    assert table.startswith("lmdb:/srv/postfix/maps/")
    assert "postfix-maps:/srv/postfix/maps" in rules["volumes"] and "postfix-maps:/srv/postfix/maps" in postfix["volumes"]
    assert "virtual_alias_maps = lmdb:@RUN@/maps/forwards" in (DEPLOY / "postfix" / "main.cf.in").read_text()
