"""The deployment files agree with the code: settings names, port, routes, paths, image.

Fast and static: nothing is built or started. Docker images cannot be built on the CI
machines (no Docker engine), so these checks are what keeps docker-compose.yml,
deploy/Dockerfile*, deploy/k8s/ and the Prometheus scrape config honest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev extras
from fastapi.routing import APIRoute
from pydantic_settings import BaseSettings

from server.app import create_app
from server.config import CONFIG_FILE_VARIABLE, Settings
from tests.servers import REPO

ROOT = REPO
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = (ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "Dockerfile.gpu")
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
IMAGE = "concierge:gpu"
CONCIERGE_SERVICES = ("concierge", "concierge-remote")
VLLM_REPLICAS = ("vllm-1", "vllm-2")
PROMETHEUS_PORT = 9090

ENV_NAME = re.compile(r"\bCONCIERGE_[A-Z0-9_]+\b")
COMPOSE_DEFAULT = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")
HTTP_URL = re.compile(r"https?://[^\s'\"]+")


def settings_env_names() -> set[str]:
    """``CONCIERGE_<FIELD>`` for every Settings field (an alias, where one is set, instead)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add((alias if isinstance(alias, str) else f"{prefix}{name}").upper())
    return names


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def k8s_manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def k8s_doc(kind: str) -> dict[str, Any]:
    for path in k8s_manifests():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == kind:
                return doc
    raise AssertionError(f"no {kind} in {K8S}")


def deployment_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = k8s_doc("Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    return containers[0]


def with_compose_defaults(value: str) -> str:
    """``${VAR:-default}`` -> ``default``: what compose substitutes when VAR is unset."""
    return COMPOSE_DEFAULT.sub(lambda m: m.group(2) or "", value)


def app_paths() -> set[str]:
    """Paths of the real app's routes (building the app runs no lifespan, so it is cheap)."""
    app = create_app(Settings())
    return {route.path for route in app.routes if isinstance(route, APIRoute)}


def default_port() -> int:
    return Settings().port


def probe_urls(node: Any) -> Iterator[str]:
    """Every http(s) URL in a compose healthcheck ``test``."""
    for part in node if isinstance(node, list) else [node]:
        yield from HTTP_URL.findall(str(part))


# --- everything parses -------------------------------------------------------------


def test_compose_file_parses_with_services() -> None:
    assert set(services()) >= {"concierge", "postgres", "prometheus", "grafana"}


@pytest.mark.parametrize("path", k8s_manifests(), ids=lambda p: p.name)
def test_k8s_manifest_parses_as_yaml_with_kind(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert "kind" in doc and "apiVersion" in doc, path.name


def test_kustomization_lists_every_manifest_except_the_example_secret() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    on_disk = {
        p.name
        for p in k8s_manifests()
        if p.name not in {"kustomization.yaml", "secret.example.yaml"}
    }
    assert listed == on_disk


# --- referenced files exist ----------------------------------------------------------


def test_compose_build_contexts_and_dockerfiles_exist() -> None:
    builds = [svc["build"] for svc in services().values() if "build" in svc]
    assert builds
    for build in builds:
        context = ROOT / build["context"]
        assert context.is_dir()
        assert (context / build["dockerfile"]).is_file(), build


def test_compose_bind_mounted_deploy_files_exist() -> None:
    sources = [
        str(volume).split(":", 1)[0]
        for svc in services().values()
        for volume in svc.get("volumes", [])
    ]
    deploy_sources = [s for s in sources if s.startswith("./deploy/")]
    assert deploy_sources
    for source in deploy_sources:
        assert (ROOT / source).exists(), source


def test_kustomization_resources_exist() -> None:
    for resource in load_yaml(K8S / "kustomization.yaml")["resources"]:
        assert (K8S / resource).is_file(), resource


def test_dockerfiles_copy_only_files_that_exist() -> None:
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                *sources, _target = line.split()[1:]
                for source in sources:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: {source}"


def test_dockerignore_keeps_what_the_images_need() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git"} <= ignored
    assert not ignored & {"server", "models", "retrieval", "bench", "pyproject.toml", "README.md"}


# --- one image, one port ---------------------------------------------------------------


def test_image_name_is_the_same_in_compose_and_k8s_deployment() -> None:
    for name in CONCIERGE_SERVICES:
        assert services()[name]["image"] == IMAGE
    assert deployment_container()["image"] == IMAGE


def test_compose_concierge_image_is_built_from_the_gpu_dockerfile() -> None:
    assert services()["concierge"]["build"]["dockerfile"] == "deploy/Dockerfile.gpu"


def test_dockerfiles_expose_the_settings_default_port() -> None:
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text(encoding="utf-8")
        assert re.findall(r"^EXPOSE (\d+)$", text, re.M) == [str(default_port())], dockerfile.name
        assert f"CONCIERGE_PORT={default_port()}" in text


def test_compose_concierge_containers_listen_on_the_settings_default_port() -> None:
    port = default_port()
    for name in CONCIERGE_SERVICES:
        svc = services()[name]
        assert svc["environment"]["CONCIERGE_PORT"] == str(port)
        assert [str(p).rsplit(":", 1)[-1] for p in svc["ports"]] == [str(port)]
        for url in probe_urls(svc["healthcheck"]["test"]):
            assert urlsplit(url).port == port, url


def test_k8s_ports_equal_the_settings_default_port() -> None:
    port = default_port()
    container = deployment_container()
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert load_yaml(K8S / "configmap.yaml")["data"]["CONCIERGE_PORT"] == str(port)
    annotations = k8s_doc("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    service_ports = k8s_doc("Service")["spec"]["ports"]
    assert [p["port"] for p in service_ports] == [port]
    assert [p["targetPort"] for p in service_ports] == [container["ports"][0]["name"]]


# --- CONCIERGE_* names are real settings ---------------------------------------------


def deploy_texts() -> list[Path]:
    return [COMPOSE, *DOCKERFILES, *k8s_manifests(), DEPLOY_DOC]


@pytest.mark.parametrize("path", deploy_texts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_concierge_variable_named_is_a_settings_field(path: Path) -> None:
    allowed = settings_env_names() | {CONFIG_FILE_VARIABLE}
    named = set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    assert named - allowed == set()


def test_compose_environments_only_set_settings_fields() -> None:
    allowed = settings_env_names()
    for name in CONCIERGE_SERVICES:
        keys = set(services()[name]["environment"])
        assert keys <= allowed, f"{name}: {sorted(keys - allowed)}"


def test_k8s_configmap_and_secret_keys_are_settings_fields() -> None:
    allowed = settings_env_names()
    assert set(load_yaml(K8S / "configmap.yaml")["data"]) <= allowed
    assert set(load_yaml(K8S / "secret.example.yaml")["stringData"]) <= allowed


def build_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("CONCIERGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.mark.parametrize("name", CONCIERGE_SERVICES)
def test_compose_concierge_environment_validates_as_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: with_compose_defaults(str(v)) for k, v in services()[name]["environment"].items()}
    settings = build_settings(env, monkeypatch)
    assert str(settings.data_dir) == "/data"
    assert settings.effective_database_url.startswith("postgresql+psycopg://")


def test_k8s_configmap_and_example_secret_validate_as_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        **load_yaml(K8S / "configmap.yaml")["data"],
        **load_yaml(K8S / "secret.example.yaml")["stringData"],
    }
    settings = build_settings(env, monkeypatch)
    mounts = {m["mountPath"] for m in deployment_container()["volumeMounts"]}
    assert str(settings.data_dir) in mounts
    assert settings.environment.value == "production"


def test_remote_urls_in_compose_point_at_the_vllm_replicas() -> None:
    urls = services()["concierge-remote"]["environment"]["CONCIERGE_REMOTE_URLS"].split(",")
    assert [urlsplit(url).hostname for url in urls] == list(VLLM_REPLICAS)
    for url, replica in zip(urls, VLLM_REPLICAS, strict=True):
        assert f"--port={urlsplit(url).port}" in services()[replica]["command"]


# --- probes hit real routes ------------------------------------------------------------


def test_k8s_probes_use_readyz_and_healthz_routes_of_the_app() -> None:
    container = deployment_container()
    paths = app_paths()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz", "/metrics"} <= paths
    annotations = k8s_doc("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in paths


def test_k8s_startup_probe_allows_for_model_load() -> None:
    probe = deployment_container()["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


def test_compose_and_dockerfile_healthchecks_use_routes_of_the_app() -> None:
    paths = app_paths()
    for name in CONCIERGE_SERVICES:
        urls = list(probe_urls(services()[name]["healthcheck"]["test"]))
        assert [urlsplit(url).path for url in urls] == ["/readyz"]
    for dockerfile in DOCKERFILES:
        check = [line for line in dockerfile.read_text().splitlines() if "/healthz" in line]
        assert check and "/healthz" in paths, dockerfile.name


def test_k8s_deployment_requests_one_gpu_and_mounts_the_data_claim() -> None:
    container = deployment_container()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    volumes = k8s_doc("Deployment")["spec"]["template"]["spec"]["volumes"]
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    }
    assert claims == {k8s_doc("PersistentVolumeClaim")["metadata"]["name"]}


def test_hpa_scales_the_deployment_on_generation_requests_in_flight() -> None:
    hpa = k8s_doc("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == k8s_doc("Deployment")["metadata"]["name"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "concierge_generation_requests_in_flight"
    assert metric["pods"]["target"]["type"] == "AverageValue"


def test_hpa_metric_is_a_gauge_the_server_defines() -> None:
    from prometheus_client import REGISTRY

    import core.metrics  # noqa: F401  (registers the metrics)

    names = {metric.name for metric in REGISTRY.collect()}
    assert "concierge_generation_requests_in_flight" in names


# --- Prometheus scrapes the ports the containers listen on ----------------------------


def scrape_targets() -> list[str]:
    """``host:port`` of every static target and every DNS-discovered service name."""
    config = load_yaml(PROMETHEUS_CONFIG)
    targets = []
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            targets.extend(static.get("targets", []))
        for dns in job.get("dns_sd_configs", []):
            targets.extend(f"{name}:{dns['port']}" for name in dns["names"])
    return targets


def listening_ports() -> dict[str, int]:
    """The port each compose service listens on inside the network."""
    ports = {name: default_port() for name in CONCIERGE_SERVICES}
    for replica in VLLM_REPLICAS:
        [flag] = [arg for arg in services()[replica]["command"] if arg.startswith("--port=")]
        ports[replica] = int(flag.removeprefix("--port="))
    ports["prometheus"] = PROMETHEUS_PORT
    return ports


def test_prometheus_scrapes_concierge_on_its_port() -> None:
    assert f"concierge:{default_port()}" in scrape_targets()


def test_prometheus_scrape_targets_match_the_compose_services_ports() -> None:
    known = listening_ports()
    for target in scrape_targets():
        host, _, port = target.rpartition(":")
        assert host in known, f"{target}: no compose service of that name"
        assert int(port) == known[host], target


def test_prometheus_mounts_match_the_files_the_config_names() -> None:
    volumes = services()["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    rule_files = load_yaml(PROMETHEUS_CONFIG).get("rule_files", [])
    mounted = {str(v).split(":")[1] for v in volumes}
    for rule_file in rule_files:
        assert rule_file in mounted or f"/etc/prometheus/{rule_file}" in mounted, rule_file
    for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
        key_file = job.get("authorization", {}).get("credentials_file")
        if key_file:
            folder = str(Path("/etc/prometheus") / key_file).rsplit("/", 1)[0]
            assert folder in mounted, f"{job['job_name']}: {key_file} is not mounted"


def test_settings_base_class_is_pydantic_settings() -> None:
    # settings_env_names relies on env_prefix + field name being the variable name
    assert issubclass(Settings, BaseSettings)
    assert Settings.model_config.get("env_prefix") == "CONCIERGE_"


# --- the generation tier: vllm serve replicas behind Concierge's own routing ------------

REMOTE_OVERLAY = K8S / "remote"


def test_the_remote_overlay_names_every_vllm_replica_it_runs() -> None:
    """``kubectl apply -k deploy/k8s/remote``: Concierge lists each replica by its own DNS
    name (``<statefulset>-<i>.<headless service>``), so it can keep a conversation on one."""
    overlay = load_yaml(REMOTE_OVERLAY / "kustomization.yaml")
    for resource in overlay["resources"]:
        assert (REMOTE_OVERLAY / resource).exists(), resource
    documents = list(yaml.safe_load_all((REMOTE_OVERLAY / "vllm.yaml").read_text()))
    service = next(d for d in documents if d["kind"] == "Service")
    statefulset = next(d for d in documents if d["kind"] == "StatefulSet")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    patched = {
        op["path"].rsplit("/", 1)[1]: op["value"]
        for patch in overlay["patches"]
        if patch["target"]["kind"] == "ConfigMap"
        for op in yaml.safe_load(patch["patch"])
    }
    assert patched["CONCIERGE_ENGINE"] == "openai_remote"
    assert set(patched) <= settings_env_names()
    names = [
        f"http://{statefulset['metadata']['name']}-{i}.{service['metadata']['name']}:8000"
        for i in range(statefulset["spec"]["replicas"])
    ]
    assert patched["CONCIERGE_REMOTE_URLS"].split(",") == names
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert "--enable-prefix-caching" in container["args"]
    model = next(a for a in container["args"] if a.startswith("--model="))
    assert model == "--model=/data/models/smollm2-135m-instruct"  # what `models prepare` writes
