"""deploy/compose.yaml stays valid and in step with the code, without a Docker engine.

Needs PyYAML, which is not a project dependency: `uv run --with pyyaml pytest tests/deploy`.
The last test also runs `docker compose config` where the compose CLI plugin is installed.
"""

import importlib
import ipaddress
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
from shared.registry import FRONTS
from shared.registry import SERVICES as REGISTRY

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: uv run --with pyyaml pytest tests/deploy")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ACCOUNT_ENV = SERVICES["account"]["environment"]
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
DOVECOT_ENTRYPOINT = DEPLOY / "dovecot" / "compose" / "entrypoint.sh"
POSTFIX_ENTRYPOINT = DEPLOY / "postfix" / "compose" / "entrypoint.sh"
PLACEHOLDER = re.compile(r"@[A-Z_]+@")

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
    "BROKER_GATEWAY_PASSWORD": "5e4d3c2b1a0f9e8d7c6b5a4f",
    "GATEWAY_FORM_SECRET": "6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c",
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


def run_function(script: Path, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """One function of an entrypoint (sourced, it runs nothing of itself), as the container runs it."""
    environment = {"PATH": os.environ["PATH"], **{key: str(value) for key, value in (env or {}).items()}}
    return subprocess.run(["bash", "-c", 'source "$1" && shift && "$@"', "test_compose", str(script), *command],
                          capture_output=True, text=True, env=environment)


def dockerfile_stages() -> dict[str, str]:
    """Each build stage's text by its name; "" is what comes before the first (the global ARGs)."""
    parts = re.split(r"^FROM \S+ AS (\S+)$", DOCKERFILE, flags=re.M)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2], strict=True))}


def build_arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", dockerfile_stages()[""], re.M)[1]


def rendered_dovecot_base() -> str:
    """base.conf as the image renders it at build (render-base.sh on the local template)."""
    rendered = subprocess.run(["bash", str(DEPLOY / "dovecot" / "compose" / "render-base.sh"),
                               str(DEPLOY / "dovecot" / "dovecot.conf.in")], capture_output=True, text=True, check=True)
    return rendered.stdout


def settings_lines(text: str) -> list[str]:
    """Lines that configure something: a placeholder left in a comment changes nothing."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def backend_address(service: str, env: dict[str, str]) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(interpolated(SERVICES[service]["networks"]["backend"]["ipv4_address"], env))


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
    render = (DEPLOY / "dovecot" / "compose" / "render-base.sh").read_text()
    instance = re.search(r"'s\|@RUN@\|([^|]+)\|g'", render)[1]
    assert "render-base.sh /etc/dovecot/mailss/dovecot.conf.in >/etc/dovecot/mailss/base.conf" in DOCKERFILE
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


def test_dovecot_healthcheck_probes_the_configured_listeners():
    """Ensure the Dovecot healthcheck knocks on the rendered template's IMAP port and compose's own LMTP
    listener (the template has none on TCP), and looks for the services' sockets; ManageSieve has no
    TCP listener (no user uploads a script of their own)."""
    base = rendered_dovecot_base()
    container = (DEPLOY / "dovecot" / "compose" / "dovecot.conf").read_text()
    listener = r"inet_listener {} \{{[^}}]*port = (\d+)"
    ports = {"imap": re.search(listener.format("imap"), base)[1], "lmtp": re.search(listener.format("lmtp"), container)[1]}
    assert re.search(listener.format("sieve"), base)[1] == "0"
    assert not re.search(listener.format("lmtp"), base)
    check = (DEPLOY / "dovecot" / "compose" / "healthcheck.sh").read_text()
    for name, port in ports.items():
        assert re.search(rf"greets {port} ", check), name
    assert "-S /srv/dovecot/services/imap" in check and "-S /srv/dovecot/services/sieve" in check


PANEL_NETWORK = {"gateway": ["backend", "panel"], "panel-proxy": ["panel"]}


def test_every_service_is_on_the_one_network():
    """Ensure every container is on the compose network and no other, but the panel's proxy, which reaches
    only the gateway; Dovecot is not published, the gateway only through its proxy."""
    for name, service in SERVICES.items():
        assert list(service["networks"]) == PANEL_NETWORK.get(name, ["backend"]), name
    assert "ports" not in SERVICES["dovecot"] and "ports" not in SERVICES["gateway"]
    assert SERVICES["panel-proxy"]["ports"] == ["${PANEL_PORT:-443}:443"]


def test_the_base_config_is_fully_rendered_and_dovecot_accepts_the_container_config(tmp_path):
    """Ensure the image's render leaves no @TOKEN@ of the template, and (where Dovecot is installed) doveconf
    accepts compose's configuration with the environment compose gives the entrypoint."""
    base = rendered_dovecot_base()
    assert PLACEHOLDER.findall(base) == []
    assert "mail_access_groups = mailss-homes" in base
    env = {**interpolated(SERVICES["dovecot"]["environment"], DEPLOYER_ENV), "ACCOUNT_UID": build_arg("ACCOUNT_UID")}
    checked = run_function(DOVECOT_ENTRYPOINT, "check_environment", env=env)
    assert checked.returncode == 0, checked.stderr
    if not shutil.which("doveconf"):
        pytest.skip("Dovecot is not installed: doveconf cannot check the rendered configuration")
    (tmp_path / "base.conf").write_text(base)
    shutil.copy(DEPLOY / "dovecot" / "compose" / "dovecot.conf", tmp_path / "dovecot.conf")
    parsed = subprocess.run(["doveconf", "-c", str(tmp_path / "dovecot.conf"), "-n"], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    # No postfix user in the image: the template's sockets for a local Postfix must be off (mode 0).
    for socket in ("lmtp", "auth-postfix"):
        assert re.search(rf"unix_listener {socket} \{{[^}}]*mode = 0+\n", parsed.stdout), socket


def test_dovecot_believes_no_client_address_unless_named_alone():
    """Ensure login_trusted_networks (whose clients may name any source address in IMAP ID) is empty by default
    and takes single addresses only: the entrypoint refuses a network, the compose subnet above all."""
    assert interpolated(SERVICES["dovecot"]["environment"], DEPLOYER_ENV)["DOVECOT_TRUSTED_NETWORKS"] == ""
    subnet = interpolated(COMPOSE["networks"]["backend"]["ipam"]["config"][0]["subnet"], DEPLOYER_ENV)
    for accepted in ("", "203.0.113.7/32", "203.0.113.7/32 2001:db8::7/128"):
        result = run_function(DOVECOT_ENTRYPOINT, "check_host_addresses", accepted)
        assert result.returncode == 0, (accepted, result.stderr)
    for refused in (subnet, "203.0.113.7", "203.0.113.7/32 10.0.0.0/8", "2001:db8::/64", "256.0.0.1/32"):
        result = run_function(DOVECOT_ENTRYPOINT, "check_host_addresses", refused)
        assert result.returncode != 0 and "DOVECOT_TRUSTED_NETWORKS" in result.stderr, refused
    assert 'login_trusted_networks = ${DOVECOT_TRUSTED_NETWORKS:-}' in DOVECOT_ENTRYPOINT.read_text()


@pytest.mark.parametrize("env", [DEPLOYER_ENV, {
    **DEPLOYER_ENV, "MAILSS_SUBNET": "10.77.0.0/16", "MAILSS_DYNAMIC_RANGE": "10.77.128.0/17",
    "MAILSS_DOVECOT_ADDRESS": "10.77.0.5", "MAILSS_NOTIFIER_ADDRESS": "10.77.0.6",
}], ids=["default", "own-subnet"])
def test_postfix_relays_only_for_the_dovecot_and_notifier_containers(env):
    """Ensure mynetworks is the two containers' fixed addresses, /32 each, never the subnet; that those addresses
    are in the subnet and outside the range Docker hands out; and that the entrypoint refuses anything wider."""
    ipam = interpolated(COMPOSE["networks"]["backend"]["ipam"]["config"][0], env)
    subnet, dynamic = ipaddress.IPv4Network(ipam["subnet"]), ipaddress.IPv4Network(ipam["ip_range"])
    assert dynamic.subnet_of(subnet)
    fixed = {backend_address("dovecot", env), backend_address("notifier", env)}
    assert len(fixed) == 2 and all(address in subnet and address not in dynamic for address in fixed)
    trusted = interpolated(SERVICES["postfix"]["environment"]["POSTFIX_TRUSTED_NETWORKS"], env).split()
    assert {ipaddress.IPv4Network(entry) for entry in trusted} == {ipaddress.IPv4Network(f"{a}/32") for a in fixed}
    assert all(entry.endswith("/32") for entry in trusted) and str(subnet) not in trusted
    result = run_function(POSTFIX_ENTRYPOINT, "check_host_addresses", " ".join(trusted))
    assert result.returncode == 0, result.stderr
    for refused in (str(subnet), f"{trusted[0]} {subnet}", "0.0.0.0/0", trusted[0].removesuffix("/32")):
        result = run_function(POSTFIX_ENTRYPOINT, "check_host_addresses", refused)
        assert result.returncode != 0 and "POSTFIX_TRUSTED_NETWORKS" in result.stderr, refused


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
    for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.M):
        *sources, _target = [part for part in line.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE, re.M))
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
    assert app_services == set(REGISTRY) | set(FRONTS) | ONE_SHOT


def test_the_web_panel_runs_behind_its_tls_proxy_without_hsts_unless_asked():
    """Ensure each front runs by its module with an HTTP health check and only its settings' names, and the
    panel gets HSTS only when the operator says the certificate is real."""
    for entry in FRONTS.values():
        service = SERVICES[entry.name]
        assert service["command"] == ["python", "-m", entry.module]
        assert entry.health_path in " ".join(service["healthcheck"]["test"])
        module, _, name = entry.settings.partition(":")
        fields = {field.upper() for field in getattr(importlib.import_module(module), name).model_fields}
        assert set(service["environment"]) <= fields, set(service["environment"]) - fields
    gateway = interpolated(SERVICES["gateway"]["environment"], DEPLOYER_ENV)
    assert gateway["GATEWAY_HSTS"] == "false" and gateway["AMQP_URL"].startswith("amqp://mailss-gateway:")
    proxy = interpolated(SERVICES["panel-proxy"]["networks"]["panel"]["ipv4_address"], DEPLOYER_ENV)
    assert gateway["GATEWAY_FORWARDED_ALLOW_IPS"] == proxy, "only the proxy may name the client"
    caddyfile = (DEPLOY / "panel" / "Caddyfile").read_text()
    assert "tls {$PANEL_TLS:internal}" in caddyfile and "reverse_proxy gateway:10080" in caddyfile


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


POSTFIX_FILES = ("main.cf.in", "master.cf", "header_checks", "smtp_header_checks", "forward_domain")


def test_postfix_templates_are_fully_rendered_locally_and_in_compose(tmp_path):
    """Ensure every @TOKEN@ of the Postfix templates is replaced by scripts/stack.sh, and that the compose
    entrypoint, with the environment compose gives it, leaves none in a setting, so local, CI and compose run
    the same configuration."""
    tokens = set()
    for name in POSTFIX_FILES:
        tokens |= set(re.findall(r"@([A-Z_]+)@", (DEPLOY / "postfix" / name).read_text()))
    local = (DEPLOY.parent / "scripts" / "stack.sh").read_text()
    for token in tokens:
        assert f"s|@{token}@|" in local, token
    env = interpolated(SERVICES["postfix"]["environment"], DEPLOYER_ENV)
    result = run_function(POSTFIX_ENTRYPOINT, "render_config", str(DEPLOY / "postfix"), str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    for name in POSTFIX_FILES:
        assert PLACEHOLDER.findall("\n".join(settings_lines((tmp_path / name.removesuffix(".in")).read_text()))) == [], name
    for table in ("header_checks", "smtp_header_checks", "forward_domain"):
        assert f"deploy/postfix/{table}" in DOCKERFILE, table


def test_compose_postfix_delivers_over_tcp_and_takes_sieve_mail_on_its_own_listener(tmp_path):
    """Ensure the compose render delivers to Dovecot's TCP LMTP, lets nobody use sendmail, keeps no listener that
    needs Dovecot's auth socket (another container's), and adds Sieve's listener on 10588 (DOVECOT_SUBMISSION_HOST)
    for mynetworks alone, through the SRS cleanup, unscanned."""
    env = interpolated(SERVICES["postfix"]["environment"], DEPLOYER_ENV)
    assert run_function(POSTFIX_ENTRYPOINT, "render_config", str(DEPLOY / "postfix"), str(tmp_path), env=env).returncode == 0
    main_cf = dict(line.split(" = ", 1) if " = " in line else (line.removesuffix(" =").strip(), "")
                   for line in settings_lines((tmp_path / "main.cf").read_text()))
    assert main_cf["virtual_transport"] == "lmtp:inet:dovecot:10024"
    assert main_cf["mynetworks"] == env["POSTFIX_TRUSTED_NETWORKS"]
    assert main_cf["authorized_submit_users"] == ""
    master_cf = (tmp_path / "master.cf").read_text()
    assert "sasl" not in "\n".join(settings_lines(master_cf))
    sieve = re.search(r"^10588 +inet .*smtpd\n((?:  -o .*\n)+)", master_cf, re.M)[1].split()
    assert {"cleanup_service_name=cleanup-sieve", "smtpd_milters=", "smtpd_recipient_restrictions=permit_mynetworks,reject",
            "smtpd_relay_restrictions=permit_mynetworks,reject"} <= set(sieve)
    assert SERVICES["dovecot"]["environment"]["DOVECOT_SUBMISSION_HOST"] == "postfix:10588"
    assert SERVICES["notifier"]["environment"]["SMTP_PORT"] == 10587 and "SMTP_PASSWORD" not in SERVICES["notifier"]["environment"]
    if shutil.which("postconf"):  # Postfix itself parses both files
        parsed = subprocess.run(["postconf", "-c", str(tmp_path), "-M", "10588/inet"], capture_output=True, text=True)
        assert parsed.returncode == 0 and parsed.stdout.startswith("10588") and not parsed.stderr, parsed.stderr


def test_the_rules_service_and_postfix_share_the_forwarding_map():
    """Ensure the map the rules service writes is the one Postfix's main.cf reads, on one volume."""
    rules, postfix = SERVICES["rules"], SERVICES["postfix"]
    table = rules["environment"]["POSTFIX_FORWARD_MAP"]
    assert table.startswith("lmdb:/srv/postfix/maps/")
    assert "postfix-maps:/srv/postfix/maps" in rules["volumes"] and "postfix-maps:/srv/postfix/maps" in postfix["volumes"]
    assert "virtual_alias_maps = lmdb:@RUN@/maps/forwards" in (DEPLOY / "postfix" / "main.cf.in").read_text()
