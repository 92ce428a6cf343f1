"""deploy/compose.yaml and the Dovecot image as the mail server's trust boundary: who may write the
auth database and the mail homes, and the master user's sockets, which only the services that act in
mailboxes reach (checked statically, as tests/deploy/test_compose.py does the rest)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

from services.copyjob.settings import CopyJobSettings
from services.rules.settings import RulesSettings
from tests.deploy.test_compose import (
    COMPOSE,
    DEPLOY,
    DEPLOYER_ENV,
    DOVECOT_ENTRYPOINT,
    SERVICES,
    build_arg,
    dockerfile_stages,
    rendered_dovecot_base,
    run_function,
)


def test_the_mail_processes_cannot_write_the_auth_database():
    """Ensure the account service (owner of passwd.d) runs as a uid that is not the mail user's: vmail has an id of
    its own in the Dovecot image, the app image's user is ACCOUNT_UID, and compose overrides neither."""
    stages = dockerfile_stages()
    vmail_uid = re.search(r'useradd --system --uid "\$(\w+)" --gid vmail .*?vmail;', stages["dovecot"], re.S)[1]
    account_uid = re.search(r'useradd --uid "\$(\w+)" .*? mailss\n', stages["app"], re.S)[1]
    assert account_uid == "ACCOUNT_UID" and vmail_uid != account_uid
    assert build_arg(vmail_uid) != build_arg(account_uid)
    assert "USER mailss" in stages["app"] and "user" not in SERVICES["account"]
    entrypoint = DOVECOT_ENTRYPOINT.read_text()
    assert 'chown "$ACCOUNT_UID:dovecot" "$RUN/passwd.d"' in entrypoint and 'chmod 2750 "$RUN/passwd.d"' in entrypoint


def test_dovecot_and_the_account_service_share_the_mail_homes_group():
    """Ensure mailss-homes (Dovecot's mail_access_groups, the group of the mail root and homes) has one gid in both
    images, the account container alone joins it, and the mail root is vmail's with the group's access."""
    stages = dockerfile_stages()
    build_arg("MAILSS_HOMES_GID")
    for stage in ("dovecot", "app"):
        assert "ARG MAILSS_HOMES_GID\n" in stages[stage], stage
        assert 'groupadd --system --gid "$MAILSS_HOMES_GID" mailss-homes;' in stages[stage], stage
    assert SERVICES["account"]["group_add"] == ["mailss-homes"]
    assert [name for name, service in SERVICES.items() if "mailss-homes" in service.get("group_add", [])] == ["account"]
    entrypoint = DOVECOT_ENTRYPOINT.read_text()
    assert 'chown vmail:mailss-homes "$RUN/mail"' in entrypoint and 'chmod 2770 "$RUN/mail"' in entrypoint


SERVICES_VOLUME = "dovecot-services"
"""the volume of Dovecot's sockets for the services, shared by its container and theirs"""
MASTER_USERS = {"copyjob": ("imap-login", "DOVECOT_IMAP_SOCKET", CopyJobSettings, "dovecot_imap_socket"),
                "rules": ("managesieve-login", "DOVECOT_SIEVE_SOCKET", RulesSettings, "dovecot_sieve_socket")}
"""the containers that log in as Dovecot's master user: the login service of their socket, its setting"""


def services_sockets(base: str) -> dict[str, tuple[str, str | None, str | None]]:
    """The Unix listener of each of those containers' login services (a config as written or as doveconf prints it,
    settings sorted): path, mode and group by service name."""
    sockets = {}
    for login, _, _, _ in MASTER_USERS.values():
        block = re.search(rf"^service {login} \{{\n(.*?)^\}}", base, re.M | re.S)[1]
        ((path, body),) = re.findall(r"unix_listener (\S+) \{\n([^}]*)\}", block)
        settings = dict(re.findall(r"^\s*(\w+) = (\S+)$", body, re.M))
        sockets[login] = (path, settings.get("mode"), settings.get("group"))
    return sockets


def test_the_master_user_logs_in_only_on_the_services_sockets(tmp_path):
    """Ensure the copy job and rules containers reach Dovecot's sockets for the services (the rendered template's
    listeners, in a volume they share with Dovecot's container), by setting and by the group mailss-mail, and keep no
    host or port of Dovecot's TCP listeners, where the master user's login fails."""
    sockets = services_sockets(rendered_dovecot_base())
    (folder,) = {str(Path(path).parent) for path, _, _ in sockets.values()}
    assert folder == "/srv/dovecot/services"
    assert all((mode, group) == ("0660", "mailss-mail") for _, mode, group in sockets.values()), sockets
    assert f"{SERVICES_VOLUME}:{folder}" in SERVICES["dovecot"]["volumes"]
    assert SERVICES_VOLUME in COMPOSE["volumes"]
    for name, (login, variable, settings, field) in MASTER_USERS.items():
        service = SERVICES[name]
        assert f"{SERVICES_VOLUME}:{folder}:ro" in service["volumes"], name
        assert service["group_add"] == ["mailss-mail"], name
        assert service["environment"][variable] == sockets[login][0] == settings.model_fields[field].default, name
        assert not [key for key in service["environment"] if re.fullmatch(r"DOVECOT_(IMAP|SIEVE)_(HOST|PORT)", key)], name
        assert service["environment"]["DOVECOT_MASTER_USER"] == SERVICES["dovecot"]["environment"]["DOVECOT_MASTER_USER"]
    joined = {name for name, service in SERVICES.items() if "mailss-mail" in service.get("group_add", [])}
    mounted = {name for name, service in SERVICES.items()
               if any(volume.startswith(f"{SERVICES_VOLUME}:") for volume in service.get("volumes", []))}
    assert joined == set(MASTER_USERS) and mounted == joined | {"dovecot"}
    entrypoint = DOVECOT_ENTRYPOINT.read_text()
    prepare = re.search(r"^prepare_instance\(\) \{\n(.*?)^\}", entrypoint, re.M | re.S)[1]
    assert re.search(r'^  mkdir -p .*"\$RUN/services"', prepare, re.M)
    assert 'chown root:mailss-mail "$RUN/services"\n' in prepare and 'chmod 750 "$RUN/services"\n' in prepare
    if shutil.which("doveconf"):  # compose's own config keeps the sockets as the template has them
        (tmp_path / "base.conf").write_text(rendered_dovecot_base())
        shutil.copy(DEPLOY / "dovecot" / "compose" / "dovecot.conf", tmp_path / "dovecot.conf")
        parsed = subprocess.run(["doveconf", "-c", str(tmp_path / "dovecot.conf"), "-n"], capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr
        assert services_sockets(parsed.stdout) == sockets


def test_dovecot_and_the_services_share_the_sockets_group():
    """Ensure mailss-mail (the group of Dovecot's sockets for the services) has one gid of its own in both images:
    the app image's is the one compose adds the copy job and rules containers to."""
    stages = dockerfile_stages()
    gids = {name: build_arg(name) for name in ("MAILSS_MAIL_GID", "MAILSS_HOMES_GID", "DOVECOT_GID", "VMAIL_UID")}
    assert len(set(gids.values())) == len(gids), gids
    for stage in ("dovecot", "app"):
        assert "ARG MAILSS_MAIL_GID\n" in stages[stage], stage
        assert 'groupadd --system --gid "$MAILSS_MAIL_GID" mailss-mail;' in stages[stage], stage


def test_the_master_users_line_allows_only_local_logins(tmp_path):
    """Ensure the entrypoint writes the master user's passwd-file line with allow_nets=local in its extra fields
    (user:password:uid:gid:gecos:home:shell:extra), so its login over the compose network fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    doveadm = bin_dir / "doveadm"
    doveadm.write_text("#!/bin/sh\ncat >/dev/null\necho '{SHA512-CRYPT}$6$salt$hash'\n")
    doveadm.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "INSTANCE": str(tmp_path),
           "DOVECOT_MASTER_PASSWORD": DEPLOYER_ENV["DOVECOT_MASTER_PASSWORD"]}
    # The instance is the test's folder, and chown a no-op (the image's dovecot group need not exist here).
    result = run_function(DOVECOT_ENTRYPOINT, "eval", 'RUN=$INSTANCE master_user=mailsvc; chown() { :; }; write_master_users',
                          env=env)
    assert result.returncode == 0, result.stderr
    (line,) = (tmp_path / "master-users").read_text().splitlines()
    assert line.split(":") == ["mailsvc", "{SHA512-CRYPT}$6$salt$hash", "", "", "", "", "", "allow_nets=local"]
    assert DEPLOYER_ENV["DOVECOT_MASTER_PASSWORD"] not in (tmp_path / "master-users").read_text()


def test_the_outbound_meter_is_where_sieve_runs_it_and_the_rules_service_reads_it():
    """Ensure the Dovecot image ships the meter as the one program of Sieve's execute folder (beside the meters'
    folder, where the program keeps its counts), with a Python to run it; the meters are a volume the mail user
    writes and the rules container mounts read-only where its setting reads them."""
    base = rendered_dovecot_base()
    bin_dir = re.search(r"^\s*sieve_execute_bin_dir = (\S+)$", base, re.M)[1]
    stage = dockerfile_stages()["dovecot"]
    assert f"COPY --chmod=755 services/rules/adapters/outbound_meter.py {bin_dir}/mailss-outbound" in stage
    assert re.search(r"apt-get install [^;]*\bpython3;", stage)
    meters = str(Path(bin_dir).parent / "outbound")
    assert f"dovecot-outbound:{meters}" in SERVICES["dovecot"]["volumes"]
    assert f"dovecot-outbound:{meters}:ro" in SERVICES["rules"]["volumes"]
    assert RulesSettings.model_fields["outbound_meter_dir"].default == meters
    assert "OUTBOUND_METER_DIR" not in SERVICES["rules"]["environment"]
    entrypoint = DOVECOT_ENTRYPOINT.read_text()
    assert 'chown vmail:mailss-mail "$RUN/outbound"' in entrypoint and 'chmod 2750 "$RUN/outbound"' in entrypoint
