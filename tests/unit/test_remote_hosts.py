"""Host specs, known_hosts handling and the host-key policy, on real keys and a real paramiko client (no server)."""

import subprocess

import paramiko
import pytest

from droplet_deploy.core.errors import HostKeyChanged, HostKeyRevoked, HostKeyUnknown, UsageError
from droplet_deploy.host import known_hosts as hosts
from droplet_deploy.host.known_hosts import HostSpec, parse_host_spec


@pytest.mark.parametrize("spec, expected", [
    ("prod", HostSpec("prod")),
    ("deploy@prod", HostSpec("prod", "deploy")),
    ("deploy@203.0.113.7:2222", HostSpec("203.0.113.7", "deploy", 2222)),
    ("db.example.com:22", HostSpec("db.example.com", None, 22)),
    ("root@[2001:db8::1]:2200", HostSpec("2001:db8::1", "root", 2200)),
    ("[2001:db8::1]", HostSpec("2001:db8::1")),
    ("  prod  ", HostSpec("prod")),
])
def test_host_specs(spec, expected):
    assert parse_host_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "user@", "a b", "prod:0", "prod:70000", "prod:ssh", "a@b@c", "prod; rm -rf /"])
def test_bad_host_specs_are_one_usage_line(spec):
    with pytest.raises(UsageError) as info:
        parse_host_spec(spec)
    assert "\n" not in str(info.value)


def test_known_hosts_names_follow_openssh():
    assert hosts.known_hosts_name("example.com", 22) == "example.com"
    assert hosts.known_hosts_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_configured_known_hosts_replaces_the_users_own_and_adds_the_aliases(tmp_path):
    found = hosts.known_hosts_files(str(tmp_path / "kh"), {"userknownhostsfile": f"{tmp_path}/a {tmp_path}/b"})
    assert found.read == (str(tmp_path / "kh"), str(tmp_path / "a"), str(tmp_path / "b"))
    assert found.record_to == str(tmp_path / "kh")


def test_default_known_hosts_record_to_the_aliases_file_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    found = hosts.known_hosts_files(None, {"userknownhostsfile": "~/alias_hosts"})
    assert found.read == (f"{tmp_path}/.ssh/known_hosts", f"{tmp_path}/alias_hosts", hosts.GLOBAL_KNOWN_HOSTS)
    assert found.record_to == f"{tmp_path}/alias_hosts"
    plain = hosts.known_hosts_files(None, {"userknownhostsfile": "none"})
    assert plain.record_to == f"{tmp_path}/.ssh/known_hosts"


@pytest.fixture
def host_key(tmp_path):
    path = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path)), path


def test_fingerprint_matches_ssh_keygen(host_key):
    key, path = host_key
    listed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    assert hosts.fingerprint(key) == "ssh-ed25519 " + listed.stdout.split()[1]


def _policy(tmp_path, accept_new, said):
    return hosts.TrustPolicy(label="prod", host="127.0.0.1", port=2222, record_to=str(tmp_path / "ssh" / "known"),
                             accept_new=accept_new, say=said.append)


def test_unknown_key_is_refused_with_the_command_that_adds_it(tmp_path, host_key):
    key, _ = host_key
    said = []
    with pytest.raises(HostKeyUnknown) as info:
        _policy(tmp_path, False, said).missing_host_key(paramiko.SSHClient(), "[127.0.0.1]:2222", key)
    message = str(info.value)
    assert f"host key of [127.0.0.1]:2222 is not known ({hosts.fingerprint(key)})" in message
    assert f"ssh-keyscan -p 2222 127.0.0.1 >> {tmp_path}/ssh/known" in message
    assert "--accept-new-host-key" in message
    assert not (tmp_path / "ssh").exists() and said == []


def test_accept_new_records_the_key_in_openssh_format(tmp_path, host_key):
    key, path = host_key
    client = paramiko.SSHClient()
    said = []
    _policy(tmp_path, True, said).missing_host_key(client, "[127.0.0.1]:2222", key)
    recorded = (tmp_path / "ssh" / "known").read_text()
    public = path.with_name("host_key.pub").read_text().split()
    assert recorded == f"[127.0.0.1]:2222 {public[0]} {public[1]}\n"
    assert (tmp_path / "ssh" / "known").stat().st_mode & 0o077 == 0
    assert client.get_host_keys().lookup("[127.0.0.1]:2222")["ssh-ed25519"] == key
    assert said and "recorded the new host key" in said[0]
    # What was written reads back as the known key, the way OpenSSH and paramiko look it up.
    assert paramiko.HostKeys(str(tmp_path / "ssh" / "known")).lookup("[127.0.0.1]:2222")["ssh-ed25519"] == key
    loaded = hosts.load_known_hosts(paramiko.SSHClient(), [str(tmp_path / "missing"), str(tmp_path / "ssh" / "known")])
    assert loaded.files == (str(tmp_path / "ssh" / "known"),), "a missing file is skipped, like OpenSSH does"


def test_changed_key_message_names_both_fingerprints_and_never_suggests_accepting(host_key, tmp_path):
    key, _ = host_key
    other_path = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_path)], check=True)
    other = paramiko.Ed25519Key.from_private_key_file(str(other_path))
    err = hosts.changed_key_error("prod", "127.0.0.1", 2222, key, other, ["/k/known_hosts"])
    assert isinstance(err, HostKeyChanged)
    text = str(err)
    assert "has CHANGED" in text and hosts.fingerprint(key) in text and hosts.fingerprint(other) in text
    assert "ssh-keygen -R '[127.0.0.1]:2222' -f /k/known_hosts" in text
    assert "never replaces" in text


def test_known_hosts_lines_paramiko_cannot_read_are_skipped_not_fatal(tmp_path, host_key):
    key, path = host_key
    public = path.with_name("host_key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(
        "# a comment\n"
        f"@cert-authority *.example.com {public[0]} {public[1]}\n"
        "garbage\n"
        "[h]:22 ssh-ed25519 not-base64!\n"
        f"[127.0.0.1]:2222 {public[0]} {public[1]}\n")
    client = paramiko.SSHClient()
    assert hosts.load_known_hosts(client, [str(known)]).files == (str(known),)
    assert client.get_host_keys().lookup("[127.0.0.1]:2222")["ssh-ed25519"] == key
    assert client.get_host_keys().lookup("host.example.com") is None, "a CA line is not a key for its hosts"



def test_hashed_known_hosts_entries_are_matched(tmp_path, host_key):
    key, path = host_key
    public = path.with_name("host_key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {public[0]} {public[1]}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|"), "OpenSSH hashed the host name"
    client = paramiko.SSHClient()
    hosts.load_known_hosts(client, [str(known)])
    assert client.get_host_keys().lookup("[127.0.0.1]:2222")["ssh-ed25519"] == key


def _other_key(tmp_path, name="other"):
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path)), path.with_name(name + ".pub").read_text().split()


def test_a_revoked_key_is_never_trusted_even_where_a_line_lists_it_or_accept_new_is_on(tmp_path, host_key):
    key, path = host_key
    public = path.with_name("host_key.pub").read_text().split()
    _, other_public = _other_key(tmp_path)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {public[0]} {public[1]}\n"
                     f"@revoked * {public[0]} {public[1]}\n"
                     f"[10.0.0.9]:22 {other_public[0]} {other_public[1]}\n")
    client = paramiko.SSHClient()
    loaded = hosts.load_known_hosts(client, [str(known)])
    assert client.get_host_keys().lookup("[127.0.0.1]:2222") is None, "OpenSSH: @revoked wins over a plain line"
    assert client.get_host_keys().lookup("[10.0.0.9]:22") is not None
    assert loaded.revoked_in(key) == str(known)

    said = []
    policy = hosts.TrustPolicy(label="prod", host="127.0.0.1", port=2222, record_to=str(known), accept_new=True,
                               say=said.append, known=loaded)
    with pytest.raises(HostKeyRevoked) as info:
        policy.missing_host_key(client, "[127.0.0.1]:2222", key)
    text = str(info.value)
    assert f"host key of [127.0.0.1]:2222 ({hosts.fingerprint(key)}) is REVOKED in {known}" in text
    assert "never accepts a revoked key" in text and "\n" not in text
    assert said == [] and known.read_text().count(public[1]) == 2, "nothing recorded"


def test_a_revoked_key_offered_in_place_of_the_recorded_one_is_named_revoked_not_changed(tmp_path, host_key):
    from droplet_deploy.host.connect import explain

    key, path = host_key
    public = path.with_name("host_key.pub").read_text().split()
    recorded, recorded_public = _other_key(tmp_path, "recorded")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {recorded_public[0]} {recorded_public[1]}\n"
                     f"@revoked [127.0.0.1]:2222 {public[0]} {public[1]}\n")
    loaded = hosts.load_known_hosts(paramiko.SSHClient(), [str(known)])

    class Connection:  # explain() only reads these attributes of a Fabric connection
        host, port, user, connect_kwargs = "127.0.0.1", 2222, "deploy", {}

    err = explain(paramiko.BadHostKeyException("[127.0.0.1]:2222", key, recorded), Connection(), "prod", loaded,
                  [], 5.0)
    assert isinstance(err, HostKeyRevoked) and "is REVOKED in" in str(err)
    changed = explain(paramiko.BadHostKeyException("[127.0.0.1]:2222", _other_key(tmp_path, "third")[0], recorded),
                      Connection(), "prod", loaded, [], 5.0)
    assert isinstance(changed, HostKeyChanged)
