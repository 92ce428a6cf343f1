"""A service started by scripts/start.sh gets only the secrets its registry entry lists."""

from shared.broker_access import Broker
from shared.launch import environment_for, read_env_file
from shared.registry import ServiceEntry

INHERITED = {
    "PATH": "/usr/bin", "MONGODB_URL": "mongodb://127.0.0.1:27017/", "DOVECOT_PASSWD_DIR": "/run/passwd.d",
    "AMQP_URL": "amqp://mailss-admin:operator-secret@127.0.0.1:5672/",
}
SECRETS_FILE = {
    "SESSION_PRIVATE_KEY": "private", "SESSION_PUBLIC_KEY": "public", "BOOTSTRAP_ADMIN_LOGIN": "admin",
    "BOOTSTRAP_ADMIN_PASSWORD": "first-admin-secret",
}


def test_a_service_gets_its_own_secrets_and_broker_user_only(tmp_path, monkeypatch):
    """Ensure a service that lists no key gets neither the private key, the first admin's password, the
    operator's broker URL nor the secret files' locations; and its AMQP_URL is its own user's."""
    (tmp_path / "key").write_text("policy-key\n")
    inherited = {**INHERITED, "MAIL_POLICY_API_KEY_FILE": str(tmp_path / "key"), "BROKER_SECRETS_DIR": str(tmp_path)}
    broker = Broker(secrets=tmp_path)
    plain = ServiceEntry(name="rules", module="services.rules", settings="x:Y", secrets=("AMQP_URL",))
    keyed = ServiceEntry(name="account", module="services.account", settings="x:Y",
                         secrets=("AMQP_URL", "MONGODB_URL", "SESSION_PRIVATE_KEY", "MAIL_POLICY_API_KEY"))

    for_plain = environment_for(plain, inherited, SECRETS_FILE, broker)
    for_keyed = environment_for(keyed, inherited, SECRETS_FILE, broker)

    assert for_plain["AMQP_URL"].startswith("amqp://mailss-rules:")
    assert {"SESSION_PUBLIC_KEY", "BOOTSTRAP_ADMIN_LOGIN", "PATH", "DOVECOT_PASSWD_DIR"} <= set(for_plain)
    assert not {"SESSION_PRIVATE_KEY", "BOOTSTRAP_ADMIN_PASSWORD", "MONGODB_URL", "MAIL_POLICY_API_KEY",
                "MAIL_POLICY_API_KEY_FILE", "BROKER_SECRETS_DIR"} & set(for_plain)
    assert "operator-secret" not in repr(for_plain) + repr(for_keyed)
    assert (for_keyed["SESSION_PRIVATE_KEY"], for_keyed["MAIL_POLICY_API_KEY"]) == ("private", "policy-key")
    assert "BOOTSTRAP_ADMIN_PASSWORD" not in for_keyed


def test_the_secrets_file_is_read_as_the_shell_reads_it(tmp_path):
    path = tmp_path / "services.env"
    path.write_text("A=1\nB='[\"example.jp\"]'\n# comment\n\nC=\"x y\"\n")

    assert read_env_file(path) == {"A": "1", "B": '["example.jp"]', "C": "x y"}


def test_the_web_panel_gets_its_form_secret_and_its_client_broker_user_and_nobody_else_gets_that_secret(tmp_path):
    """Ensure the gateway (a front) gets its form secret and the broker user `mailss-gateway`, no database URL
    or private key; and no service gets the gateway's secret."""
    from shared.registry import FRONTS, SERVICES

    secrets = {**SECRETS_FILE, "GATEWAY_FORM_SECRET": "form-secret"}
    broker = Broker(secrets=tmp_path)
    panel = environment_for(FRONTS["gateway"], INHERITED, secrets, broker)

    assert panel["AMQP_URL"].startswith("amqp://mailss-gateway:") and panel["GATEWAY_FORM_SECRET"] == "form-secret"
    assert not {"SESSION_PRIVATE_KEY", "BOOTSTRAP_ADMIN_PASSWORD", "MONGODB_URL"} & set(panel)
    for entry in SERVICES.values():
        assert "GATEWAY_FORM_SECRET" not in environment_for(entry, INHERITED, secrets, broker), entry.name
