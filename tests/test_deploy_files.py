"""Static checks of the deployment files (deploy/, .dockerignore) against the configuration they feed.

No Docker engine is needed: the Dockerfile, compose.yaml and the systemd unit are parsed here, the
image's health-check script is run against a local HTTP server, and `systemd-analyze verify` checks the
unit where it is installed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import INVITE_PERMISSIONS
from bot.config import SHUTDOWN_FINAL_EDITS_SECONDS, ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_SOURCE = ROOT / "bot" / "config.py"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
UNIT = DEPLOY / "ollacord.service"
DEPLOY_README = DEPLOY / "README.md"
DOCKERIGNORE = ROOT / ".dockerignore"

# Variables the deployment files may set that are not ollacord settings.
RUNTIME_VARIABLES = {"PYTHONUNBUFFERED"}
DEFAULT_SHUTDOWN_GRACE = Settings(discord_token="t").shutdown_grace_seconds
# What a stopping bot needs at most: the grace, the final edits, and a second to close and exit.
SHUTDOWN_NEEDS = DEFAULT_SHUTDOWN_GRACE + SHUTDOWN_FINAL_EDITS_SECONDS + 1
# `docker stop` and `docker compose stop` kill the container this long after SIGTERM unless told otherwise
# (docs.docker.com/reference/cli/docker/container/stop: "--timeout ... default 10" for Linux containers).
DOCKER_DEFAULT_STOP_TIMEOUT = 10


# ---- .env.example and bot/config.py -----------------------------------------------------------------


def env_example_keys() -> list[str]:
    """Keys that .env.example documents: `KEY=...` lines (a commented-out `# KEY=` counts too)."""
    keys = re.findall(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert keys, ".env.example documents no keys"
    return keys


class RecordingEnv(dict[str, str]):
    """An environment that remembers every key looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def keys_read_by_config() -> set[str]:
    env = RecordingEnv({"DISCORD_TOKEN": "t"})
    with contextlib.suppress(ConfigError):  # only the set of keys matters here
        Settings.from_env(env)
    assert "DISCORD_TOKEN" in env.read
    return env.read


def test_env_example_lists_each_key_once() -> None:
    keys = env_example_keys()
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def test_env_example_documents_exactly_the_keys_config_reads() -> None:
    documented = set(env_example_keys())
    read = keys_read_by_config()
    assert sorted(read - documented) == [], "keys bot/config.py reads that .env.example does not document"
    assert sorted(documented - read) == [], "keys .env.example documents that bot/config.py never reads"


def test_every_env_example_key_appears_in_config_source() -> None:
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    missing = [key for key in env_example_keys() if f'"{key}"' not in source]
    assert missing == []


def test_every_key_named_in_config_source_is_documented() -> None:
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:get|parsed)\(\s*"([A-Z][A-Z0-9_]*)"', source))
    assert "DISCORD_TOKEN" in named
    assert sorted(named - set(env_example_keys())) == []


# ---- Dockerfile -----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker also drops comment lines inside a continued instruction
        if line.endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        whole = (pending + raw).strip()
        pending = ""
        instruction, _, arguments = whole.partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
    assert pending == "", "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile_args(name: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile_instructions() if instruction == name]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in dockerfile_args("ENV"):
        words = shlex.split(arguments)
        if "=" not in words[0]:  # legacy `ENV KEY value` form
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"ENV {arguments!r}: cannot parse {word!r}"
            env[key] = value
    return env


def healthcheck_command() -> list[str]:
    (arguments,) = dockerfile_args("HEALTHCHECK")
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", arguments, flags=re.DOTALL)
    assert match, f"HEALTHCHECK is not `[options] CMD [json array]`: {arguments[:80]!r}"
    # Docker parses the exec form as JSON; if that failed it would silently run it through a shell.
    command = json.loads(match.group(2))
    assert isinstance(command, list)
    assert all(isinstance(part, str) for part in command)
    return command


def test_dockerfile_builds_from_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    global_args = {}
    for instruction, arguments in instructions:
        if instruction == "FROM":
            break
        if instruction == "ARG":
            key, _, value = arguments.partition("=")
            global_args[key] = value
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], arguments.split()[0])
        for arguments in dockerfile_args("FROM")
    ]
    assert bases[-1] == "python:3.11-slim"
    assert all(base == "python:3.11-slim" or base.isidentifier() for base in bases)


def test_dockerfile_installs_the_package_without_dev_extra_or_pip_cache() -> None:
    installs = [arguments for arguments in dockerfile_args("RUN") if "pip install" in arguments]
    assert installs, "no pip install in the Dockerfile"
    for command in installs:
        assert "--no-cache-dir" in command
        assert "[dev]" not in command
        assert not re.search(r"(^|\s)(-e|--editable)\s", command)


def test_dockerfile_copies_what_the_package_build_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied: set[str] = set()
    for arguments in dockerfile_args("COPY"):
        words = [word for word in arguments.split() if not word.startswith("--")]
        if "--from" in arguments:
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            copied.add(source.rstrip("/"))
    assert {"pyproject.toml", pyproject["project"]["readme"], "bot"} <= copied


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    users = [arguments for instruction, arguments in final_stage() if instruction == "USER"]
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"
    setup = " ".join(dockerfile_args("RUN"))
    assert "--uid 10001" in setup
    assert "chown 10001:10001 /data" in setup


def test_dockerfile_data_directory_is_a_volume() -> None:
    volumes = [
        volume
        for arguments in dockerfile_args("VOLUME")
        for volume in (json.loads(arguments) if arguments.startswith("[") else arguments.split())
    ]
    assert "/data" in volumes
    assert dockerfile_env()["DATA_DIR"] == "/data"
    assert dockerfile_args("WORKDIR")[-1] == "/app"


def test_dockerfile_environment_defaults() -> None:
    env = dockerfile_env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["HEALTH_HOST"] == "0.0.0.0"
    assert env["HEALTH_PORT"] == "8080"
    assert dockerfile_args("EXPOSE") == [env["HEALTH_PORT"]]
    # The image's values must be valid settings.
    Settings.from_env({"DISCORD_TOKEN": "t", **{k: v for k, v in env.items() if k not in RUNTIME_VARIABLES}})


def test_default_grace_fits_a_plain_docker_stop() -> None:
    """Without --stop-timeout Docker kills the bot 10 s after SIGTERM: the default grace must end before."""
    assert SHUTDOWN_NEEDS <= DOCKER_DEFAULT_STOP_TIMEOUT


def test_deploy_files_state_the_real_default_grace_and_the_room_to_leave() -> None:
    """The comments next to the stop timeouts quote today's default, not an old one."""
    grace = f"{DEFAULT_SHUTDOWN_GRACE:g}"
    room = f"{SHUTDOWN_NEEDS - DEFAULT_SHUTDOWN_GRACE:g} s"
    for path in (DOCKERFILE, COMPOSE, UNIT, DEPLOY_README):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert f"(default {grace})" in text, path
        assert room in text, path
    assert re.search(rf"^#SHUTDOWN_GRACE_SECONDS={grace}$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE)


def test_dockerfile_starts_the_bot_and_stops_it_with_sigterm() -> None:
    (cmd,) = [arguments for instruction, arguments in final_stage() if instruction == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "bot"]
    assert dockerfile_args("STOPSIGNAL") == ["SIGTERM"]
    assert dockerfile_args("ENTRYPOINT") == []


def test_dockerfile_healthcheck_calls_healthz_with_urllib() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    code = command[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "/healthz" in code
    assert "urllib" in code
    assert "HEALTH_PORT" in code


def test_dockerfile_labels() -> None:
    labels = " ".join(dockerfile_args("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert f"ARG OLLACORD_VERSION={version}" in DOCKERFILE.read_text(encoding="utf-8")


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"ok\n"

    def do_GET(self) -> None:
        if self.path != "/healthz":
            self.send_error(404)
            return
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_HealthHandler]]]:
    handler = type("Handler", (_HealthHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_healthcheck_passes_on_200(health_server: tuple[int, type[_HealthHandler]]) -> None:
    port, _ = health_server
    result = run_healthcheck({"HEALTH_PORT": str(port)})
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_on_503_with_the_reason(health_server: tuple[int, type[_HealthHandler]]) -> None:
    port, handler = health_server
    handler.status, handler.body = 503, b"discord gateway not connected\n"
    result = run_healthcheck({"HEALTH_PORT": str(port)})
    assert result.returncode == 1
    assert "503" in result.stderr
    assert "discord gateway not connected" in result.stderr


def test_healthcheck_ignores_proxy_settings(health_server: tuple[int, type[_HealthHandler]]) -> None:
    port, _ = health_server
    result = run_healthcheck({"HEALTH_PORT": str(port), "http_proxy": "http://127.0.0.1:9", "no_proxy": ""})
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with http.server.HTTPServer(("127.0.0.1", 0), _HealthHandler) as server:
        port = server.server_address[1]  # bound, then closed: nothing listens there
    result = run_healthcheck({"HEALTH_PORT": str(port)})
    assert result.returncode == 1
    assert "unreachable" in result.stderr


@pytest.mark.parametrize("value", ["", "off"])
def test_healthcheck_fails_when_the_endpoint_is_off(value: str) -> None:
    result = run_healthcheck({"HEALTH_PORT": value})
    assert result.returncode == 1
    assert "HEALTH_PORT" in result.stderr


# ---- .dockerignore ----------------------------------------------------------------------------------------


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything below a match."""
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        if re.fullmatch(regex + "(?:/.*)?", path):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [".env", ".env.local", ".venv/bin/python", "data/ollacord.sqlite3", ".git/HEAD", "tests/test_config.py",
     "bot/__pycache__/config.cpython-311.pyc", ".mypy_cache/x", ".pytest_cache/x", ".ruff_cache/x"],
)  # fmt: skip
def test_dockerignore_keeps_secrets_state_and_caches_out(path: str) -> None:
    assert dockerignore_excludes(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "bot/__main__.py", "bot/config.py", "deploy/Dockerfile"]
)
def test_dockerignore_keeps_the_build_inputs(path: str) -> None:
    assert not dockerignore_excludes(path)


# ---- compose.yaml ---------------------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str) -> Any:
    if text[:1] in "[{&*!|>":
        raise ValueError(f"compose.yaml: flow, anchor, tag or block scalar not supported here: {text!r}")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def load_compose_subset(text: str) -> Any:
    """Parse the YAML subset compose.yaml sticks to: block mappings, lists of scalars, comments.

    Anything else raises, so the file cannot drift into syntax this parser would misread.
    """
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError("compose.yaml: tab in indentation")
        content = _strip_comment(raw)
        if content.strip():
            lines.append((len(content) - len(content.lstrip(" ")), content.strip()))

    def block(start: int, indent: int) -> tuple[Any, int]:
        if lines[start][1].startswith("- "):
            items: list[Any] = []
            i = start
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                item = lines[i][1][2:].strip()
                if re.match(r"^[^'\"]+:(\s|$)", item):
                    raise ValueError(f"compose.yaml: mapping inside a list not supported here: {item!r}")
                items.append(_scalar(item))
                i += 1
            return items, i
        mapping: dict[str, Any] = {}
        i = start
        while i < len(lines) and lines[i][0] == indent:
            match = re.fullmatch(r"([^\s:'\"][^:]*?):(?:\s+(.*))?", lines[i][1])
            if not match:
                raise ValueError(f"compose.yaml: cannot parse {lines[i][1]!r}")
            key, value = match.group(1), match.group(2)
            if key in mapping:
                raise ValueError(f"compose.yaml: duplicate key {key!r}")
            i += 1
            if value:
                mapping[key] = _scalar(value)
            elif i < len(lines) and lines[i][0] > indent:
                mapping[key], i = block(i, lines[i][0])
            else:
                mapping[key] = None
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError(f"compose.yaml: unexpected indentation at {lines[i][1]!r}")
        return mapping, i

    document, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"compose.yaml: cannot parse from {lines[end][1]!r}")
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_compose_subset(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_compose_parser_agrees_with_pyyaml(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(COMPOSE.read_text(encoding="utf-8")) == compose


def test_compose_has_exactly_the_two_services(compose: dict[str, Any]) -> None:
    default = {name for name, service in compose["services"].items() if "profiles" not in service}
    assert default == {"ollama", "ollacord"}
    assert compose["name"] == "ollacord"


def test_compose_bot_reaches_ollama_by_service_name(compose: dict[str, Any]) -> None:
    bot = compose["services"]["ollacord"]
    assert bot["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert bot["depends_on"]["ollama"] == {"condition": "service_started"}
    # Without the postgres profile the postgres service does not exist: the dependency must be optional.
    assert bot["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}


# ---- the postgres profile: PostgreSQL and a standby instance ------------------------------------------------


def test_the_postgres_profile_adds_postgresql_and_a_standby(compose: dict[str, Any]) -> None:
    services = compose["services"]
    profiled = {name for name, service in services.items() if service.get("profiles") == ["postgres"]}
    assert profiled == {"postgres", "ollacord-standby"}
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert int(postgres["image"].split(":")[1]) >= 14  # idle_session_timeout frees a vanished instance's lock
    assert "ports" not in postgres
    mounts = dict(volume.rsplit(":", 1)[::-1] for volume in postgres["volumes"])
    assert mounts["/var/lib/postgresql/data"] in compose["volumes"]
    assert postgres["healthcheck"]["test"][0] == "CMD-SHELL" and "pg_isready" in postgres["healthcheck"]["test"][1]


def test_the_documented_database_url_matches_the_postgres_service(compose: dict[str, Any]) -> None:
    env = compose["services"]["postgres"]["environment"]
    text = COMPOSE.read_text(encoding="utf-8")
    url = re.search(r"DATABASE_URL=(postgresql://\S+)", text)
    assert url
    assert url.group(1) == f"postgresql://{env['POSTGRES_USER']}:ollacord@postgres:5432/{env['POSTGRES_DB']}"
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-ollacord}"
    Settings.from_env({"DISCORD_TOKEN": "t", "DATABASE_URL": url.group(1)})  # a valid setting


def test_the_standby_runs_like_the_bot_but_only_on_postgresql(compose: dict[str, Any], tmp_path: Path) -> None:
    bot, standby = compose["services"]["ollacord"], compose["services"]["ollacord-standby"]
    for key in ("build", "env_file", "init", "restart", "stop_grace_period"):
        assert standby[key] == bot[key], key
    for key in ("OLLAMA_HOST", "HEALTH_HOST", "HEALTH_PORT"):
        assert standby["environment"][key] == bot["environment"][key], key
    assert standby["depends_on"]["postgres"] == {"condition": "service_healthy"}
    # No SQLite for it: no volume, and a data folder the image's non-root user cannot create, named so the
    # error says what is missing. Were it to run on SQLite, it would answer beside the active instance.
    assert "volumes" not in standby and "ports" not in standby
    data_dir = standby["environment"]["DATA_DIR"]
    assert "DATABASE_URL" in data_dir and Path(data_dir).parent == Path("/")
    assert "USER 10001" in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_bot_builds_this_dockerfile_and_reads_the_root_env(compose: dict[str, Any]) -> None:
    bot = compose["services"]["ollacord"]
    context = (DEPLOY / bot["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / bot["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert (DEPLOY / bot["env_file"]).resolve() == ROOT / ".env"


def test_compose_bot_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    bot = compose["services"]["ollacord"]
    assert bot["environment"]["DATA_DIR"] == "/data"
    mounts = dict(volume.rsplit(":", 1)[::-1] for volume in bot["volumes"])
    assert mounts["/data"] in compose["volumes"]


def test_compose_ollama_keeps_models_in_a_named_volume(compose: dict[str, Any]) -> None:
    ollama = compose["services"]["ollama"]
    assert ollama["image"].startswith("ollama/ollama")
    mounts = dict(volume.rsplit(":", 1)[::-1] for volume in ollama["volumes"])
    assert mounts["/root/.ollama"] in compose["volumes"]


def test_compose_health_endpoint_matches_the_image(compose: dict[str, Any]) -> None:
    env = compose["services"]["ollacord"]["environment"]
    # Set again in compose: an empty `HEALTH_PORT=` from a copied .env.example would beat the image's ENV.
    assert str(env["HEALTH_PORT"]) == dockerfile_env()["HEALTH_PORT"]
    assert env["HEALTH_HOST"] == "0.0.0.0"


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_restarts_and_stops_gracefully(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {service["restart"] for service in services.values()} == {"unless-stopped"}
    grace = re.fullmatch(r"(\d+)s", services["ollacord"]["stop_grace_period"])
    assert grace
    assert int(grace.group(1)) >= SHUTDOWN_NEEDS


def test_compose_gpu_reservation_and_host_ollama_are_documented_but_off(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert "deploy" not in compose["services"]["ollama"]
    assert "extra_hosts" not in compose["services"]["ollacord"]
    for commented in ("# deploy:", "#         - driver: nvidia", "#           capabilities: [gpu]",
                      "NVIDIA Container Toolkit", '#   - "host.docker.internal:host-gateway"',
                      "OLLAMA_HOST: http://host.docker.internal:11434",
                      "exec ollama ollama pull llama3.2"):  # fmt: skip
        assert commented in text


# ---- every variable the deployment files set is a documented setting --------------------------------------


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in the unit, in order (keys may repeat)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), "continuation lines are not used in the unit"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"cannot parse unit line {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(key: str) -> list[str]:
    return [value for _, k, value in unit_entries() if k == key]


def unit_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in unit_values("Environment"):
        for word in shlex.split(value):
            name, _, setting = word.partition("=")
            env[name] = setting
    return env


@pytest.mark.parametrize("where", ["compose.yaml", "Dockerfile ENV", "ollacord.service Environment="])
def test_deploy_files_only_set_documented_settings(where: str, compose: dict[str, Any]) -> None:
    if where == "compose.yaml":
        # The bots' services only: variables of the ollama and postgres services are their own settings.
        names = set(compose["services"]["ollacord"].get("environment", {}))
        names |= set(compose["services"]["ollacord-standby"].get("environment", {}))
    elif where == "Dockerfile ENV":
        names = set(dockerfile_env())
    else:
        names = set(unit_environment())
    assert names, f"{where} sets no variables"
    assert sorted(names - RUNTIME_VARIABLES - set(env_example_keys())) == []


def test_deploy_files_set_valid_values(compose: dict[str, Any]) -> None:
    bots = [compose["services"][name]["environment"] for name in ("ollacord", "ollacord-standby")]
    for env in (*bots, dockerfile_env(), unit_environment()):
        settings = {k: str(v) for k, v in env.items() if k not in RUNTIME_VARIABLES}
        Settings.from_env({"DISCORD_TOKEN": "t", **settings})


# ---- systemd unit ---------------------------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "ReadWritePaths": "/var/lib/ollacord",
    "UMask": "0077",
}


@pytest.mark.parametrize(("key", "value"), sorted(HARDENING.items()))
def test_unit_hardening(key: str, value: str) -> None:
    assert [(s, v) for s, k, v in unit_entries() if k == key] == [("Service", value)]


def test_unit_runs_the_venv_bot_as_its_user() -> None:
    (exec_start,) = unit_values("ExecStart")
    assert shlex.split(exec_start) == ["/opt/ollacord/.venv/bin/python", "-m", "bot"]
    assert unit_values("User") == ["ollacord"]
    assert unit_values("EnvironmentFile") == ["/etc/ollacord/ollacord.env"]
    assert unit_environment() == {"DATA_DIR": "/var/lib/ollacord"}
    assert unit_values("WorkingDirectory") == ["/var/lib/ollacord"]
    assert unit_values("StateDirectory") == ["ollacord"]


def test_unit_ordering_restart_and_stop() -> None:
    after = " ".join(unit_values("After")).split()
    assert {"network-online.target", "ollama.service"} <= set(after)
    assert "network-online.target" in " ".join(unit_values("Wants")).split()
    assert unit_values("Restart") == ["on-failure"]
    assert unit_values("RestartSec") == ["5"]
    assert unit_values("KillSignal") == ["SIGTERM"]
    (timeout,) = unit_values("TimeoutStopSec")
    assert int(timeout) >= SHUTDOWN_NEEDS
    # A configuration error (exit 2) is not retried forever.
    assert unit_values("RestartPreventExitStatus") == ["2"]
    assert unit_values("WantedBy") == ["multi-user.target"]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart's program exists: point it at this interpreter.
    unit = tmp_path / "ollacord.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/ollacord/.venv/bin/python", sys.executable))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr
    assert "ignoring" not in result.stderr.lower()


# ---- deploy/README.md -------------------------------------------------------------------------------------

PERMISSION_BITS = {
    "View Channels": 1 << 10,
    "Send Messages": 1 << 11,
    "Send Messages in Threads": 1 << 38,
    "Create Public Threads": 1 << 35,
    "Read Message History": 1 << 16,
    "Add Reactions": 1 << 6,
}


@pytest.fixture(scope="module")
def readme() -> str:
    return DEPLOY_README.read_text(encoding="utf-8")


def test_readme_covers_the_discord_application(readme: str) -> None:
    assert "Message Content" in readme
    assert "`bot`" in readme
    assert "`applications.commands`" in readme
    assert "scope=bot+applications.commands" in readme
    for name in PERMISSION_BITS:
        assert name in readme


def test_readme_permissions_integer_is_the_sum_of_the_listed_permissions(readme: str) -> None:
    total = sum(PERMISSION_BITS.values())
    assert total == 309237713984
    assert f"permissions={total}" in readme
    # The main README's invite URL and the one `python -m bot check` prints must grant the same.
    assert f"permissions={total}" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert INVITE_PERMISSIONS.value == total


def test_readme_covers_reaching_ollama_from_a_container(readme: str) -> None:
    for text in ("host.docker.internal", "host-gateway", "http://ollama:11434", "OLLAMA_HOST=0.0.0.0",
                 "network_mode: host", "port 80"):  # fmt: skip
        assert text in readme


def test_readme_walks_through_both_paths(readme: str) -> None:
    for text in ("cp .env.example .env", "docker compose -f deploy/compose.yaml up -d --build",
                 "exec ollama ollama pull", "/healthz", "useradd", "/opt/ollacord/.venv",
                 "pip install --no-cache-dir /opt/ollacord", "chmod 600", "install -m 600",
                 "systemctl enable --now ollacord", "journalctl -u ollacord -f", "ollacord.sqlite3"):  # fmt: skip
        assert text in readme


def test_readme_links_point_to_existing_files(readme: str) -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", readme)
    assert targets
    for target in targets:
        assert (DEPLOY / target).exists(), target
