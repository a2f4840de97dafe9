#!/usr/bin/env python3
"""Check that the deployment files agree with regions.toml.

regions.toml is the source of truth for region names, node ports, Redis ports, buckets,
prefixes and cloud regions. This compares it with:

  * every docker-compose combination (resolved by `docker-compose config`): one node, one
    Redis per region with the right ports, the GEOREC__* overrides every georec container
    gets, the buckets minio-init creates, the replicated layout's MinIOs and replication
    rules, the router's listen port;
  * the Prometheus scrape targets;
  * the terraform stacks: one root per region under terraform/regions/ with the region's
    name, cloud region, node port, bucket and prefix; identical .tf files otherwise; a
    default of var.residency_zones matching the regions' `residency`; the
    primary stack's buckets and the global stack's region -> cloud region map; and a
    description on every terraform variable and output.

Every mismatch is printed with where it is and what regions.toml says; the exit status is 1
when there is any. Needs Python 3.11+ (tomllib), PyYAML and python-hcl2 (both come with
checkov; scripts/check-deploy runs this with its venv).

Usage: check-consistency.py [--root DIR] [--compose CMD]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - reported at run time
    yaml = None
try:
    import hcl2
except ImportError:  # pragma: no cover
    hcl2 = None

# Compose files and profile sets checked: (label, files, profiles, replicated layout?).
COMBINATIONS = [
    ("base", ["docker-compose.yml"], [], False),
    ("base+observability", ["docker-compose.yml"], ["observability"], False),
    ("replicated", ["docker-compose.yml", "docker-compose.replicated.yml"], [], True),
    ("replicated+observability", ["docker-compose.yml", "docker-compose.replicated.yml"], ["observability"], True),
]

GEOREC_COMMANDS = ("region-node", "router", "model-sync", "georec-bootstrap-model")
# Services named like per-region ones that are not.
HELPER_SERVICES = {"minio-init", "minio-replication-init", "redis-exporter"}


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0

    def expect(self, ok: bool, where: str, message: str) -> bool:
        self.checked += 1
        if not ok:
            self.problems.append(f"{where}: {message}")
        return ok

    def equal(self, where: str, what: str, found, wanted, source: str) -> bool:
        if isinstance(found, dict) and isinstance(wanted, dict) and found != wanted:
            # Name only the entries that differ.
            keys = sorted(set(found) | set(wanted), key=str)
            diff = [k for k in keys if found.get(k) != wanted.get(k)]
            shown = "; ".join(f"[{k!r}] is {found.get(k, '<missing>')!r}, {source} says {wanted.get(k, '<absent>')!r}" for k in diff)
            return self.expect(False, where, f"{what}: {shown}")
        return self.expect(found == wanted, where, f"{what} is {found!r} but {source} says {wanted!r}")


# ---------------------------------------------------------------------------- regions.toml


class Region:
    def __init__(self, name: str, raw: dict) -> None:
        self.name = name
        self.env = "GEOREC__REGIONS__" + name.upper().replace("-", "_")
        self.listen = raw["listen"]
        self.port = port_of(self.listen)
        redis = urlsplit(raw["redis_url"])
        self.redis_port = redis.port or 6379
        self.cloud_region = raw["cloud_region"]
        s3 = raw["s3"]
        self.bucket = s3["bucket"]
        self.prefix = s3.get("prefix", "")
        self.s3_endpoint = s3.get("endpoint")
        self.residency = raw.get("residency")


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def load_cluster(path: Path):
    with path.open("rb") as f:
        raw = tomllib.load(f)
    regions = {name: Region(name, r) for name, r in sorted(raw["regions"].items())}
    return raw, regions


# ---------------------------------------------------------------------------- compose


def compose_config(root: Path, compose: list[str], files: list[str], profiles: list[str]) -> dict:
    args = list(compose)
    for f in files:
        args += ["-f", str(root / f)]
    for p in profiles:
        args += ["--profile", p]
    args.append("config")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREC_", "COMPOSE_", "MINIO_", "REDIS_"))}
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(shlex.quote(a) for a in args)}` failed:\n{done.stderr.strip()}")
    return yaml.safe_load(done.stdout)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def published(service: dict) -> list[tuple[int, int]]:
    """(host port, container port) pairs of a service, whatever the config output style."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            if p.get("published") is not None:
                out.append((int(p["published"]), int(p["target"])))
            continue
        spec = str(p).split("/")[0]
        parts = spec.split(":")
        if len(parts) >= 2:
            out.append((int(parts[-2]), int(parts[-1])))
    return out


def command_of(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def check_env(rep: Report, where: str, services: dict, expected: dict, optional: bool = False) -> None:
    """Each key must have its expected value in every georec service (JSON values compared parsed)."""
    for key, (want, source) in expected.items():
        wrong: dict[str, list[str]] = {}
        for name, svc in sorted(services.items()):
            found = env_of(svc).get(key)
            if found is None and optional:
                continue
            same = found == want
            if not same and found is not None and want.startswith("["):
                try:
                    same = json.loads(found) == json.loads(want)
                except ValueError:
                    pass
            if not same:
                wrong.setdefault(repr(found), []).append(name)
        for found, names in wrong.items():
            rep.expect(False, f"{where} environment of {', '.join(names)}", f"{key} is {found} but {source} says {want!r}")
        if not wrong:
            rep.checked += 1


def check_compose(rep: Report, label: str, cfg: dict, raw: dict, regions: dict[str, Region], replicated: bool) -> None:
    where = f"docker-compose [{label}]"
    services: dict = cfg.get("services") or {}
    primary = raw["primary"]
    router_port = port_of(raw.get("router", {}).get("listen", "127.0.0.1:8080"))

    # No service for a region regions.toml does not have.
    for svc in services:
        m = re.fullmatch(r"(node|redis|minio)-(.+)", svc)
        if m and m.group(2) not in regions and svc not in HELPER_SERVICES:
            rep.expect(False, f"{where} service {svc}", f"region {m.group(2)!r} is not in regions.toml (regions: {', '.join(regions)})")

    georec_services = {
        name: s for name, s in services.items() if command_of(s) and command_of(s)[0] in GEOREC_COMMANDS
    }
    rep.expect(bool(georec_services), where, "no georec service (region-node, router, model-sync) found")

    for r in regions.values():
        node_name, redis_name = f"node-{r.name}", f"redis-{r.name}"
        node = services.get(node_name)
        redis = services.get(redis_name)
        if rep.expect(node is not None, where, f"no service {node_name} for region {r.name} of regions.toml"):
            at = f"{where} service {node_name}"
            rep.equal(at, "command", command_of(node), ["region-node", "--region", r.name], f"regions.toml [regions.{r.name}]")
            rep.expect(
                (r.port, r.port) in published(node),
                at,
                f"publishes {published(node)} but regions.toml regions.{r.name}.listen is {r.listen} "
                f"(expected host port {r.port} -> container port {r.port})",
            )
            rep.expect(
                f"127.0.0.1:{r.port}/health/ready" in healthcheck_text(node),
                at,
                f"healthcheck {healthcheck_text(node)!r} does not probe port {r.port} (regions.toml regions.{r.name}.listen {r.listen})",
            )
            rep.expect(redis_name in (node.get("depends_on") or {}), at, f"does not depend on {redis_name}")
        if rep.expect(redis is not None, where, f"no service {redis_name} for region {r.name} of regions.toml"):
            rep.expect(
                any(host == r.redis_port and target == 6379 for host, target in published(redis)),
                f"{where} service {redis_name}",
                f"publishes {published(redis)} but regions.toml regions.{r.name}.redis_url is on port {r.redis_port}",
            )

        # The overrides every georec container gets (one line per key, naming the services).
        want_endpoint = f"http://minio-{r.name}:9000" if replicated else "http://minio:9000"
        expected = {
            f"{r.env}__LISTEN": (f"0.0.0.0:{r.port}", f"regions.toml regions.{r.name}.listen ({r.listen})"),
            f"{r.env}__REDIS_URL": (f"redis://{redis_name}:6379", f"the Redis service of {r.name}"),
            f"{r.env}__URLS": (json.dumps([f"http://{node_name}:{r.port}"]), f"regions.toml regions.{r.name}.listen ({r.listen})"),
            f"{r.env}__S3__ENDPOINT": (want_endpoint, "the MinIO layout of this combination"),
        }
        check_env(rep, where, georec_services, expected)
        check_env(rep, where, georec_services, {f"{r.env}__S3__BUCKET": (r.bucket, f"regions.toml regions.{r.name}.s3.bucket")}, optional=True)

        if replicated:
            m = services.get(f"minio-{r.name}")
            rep.expect(m is not None, where, f"no service minio-{r.name} (the replicated layout has one MinIO per region)")

    check_env(rep, where, georec_services, {
        "GEOREC__ROUTER__LISTEN": (f"0.0.0.0:{router_port}", f"regions.toml router.listen ({raw.get('router', {}).get('listen')})"),
        "GEOREC__PRIMARY__ENDPOINT": ("http://minio:9000", "the compose layout (primary store = service minio)"),
    })

    router = services.get("router")
    if rep.expect(router is not None, where, "no service router"):
        rep.equal(f"{where} service router", "command", command_of(router), ["router"], "the image's binaries")
        rep.expect((router_port, router_port) in published(router), f"{where} service router",
                   f"publishes {published(router)} but regions.toml router.listen is {raw.get('router', {}).get('listen')}")

    minio = services.get("minio")
    if rep.expect(minio is not None, where, "no service minio (the primary store)"):
        primary_port = urlsplit(primary.get("endpoint") or "http://x:9000").port or 9000
        rep.expect(any(host == primary_port and target == 9000 for host, target in published(minio)), f"{where} service minio",
                   f"publishes {published(minio)} but regions.toml primary.endpoint is {primary.get('endpoint')}")

    init = services.get("minio-init")
    if rep.expect(init is not None, where, "no service minio-init (creates the buckets)"):
        buckets = env_of(init).get("GEOREC_BUCKETS", "").split()
        for b, what in [(primary["bucket"], "primary.bucket")] + [(r.bucket, f"regions.{r.name}.s3.bucket") for r in regions.values()]:
            rep.expect(b in buckets, f"{where} service minio-init GEOREC_BUCKETS",
                       f"does not create bucket {b!r} (regions.toml {what}); it creates {buckets}")
        extra = set(buckets) - {primary["bucket"]} - {r.bucket for r in regions.values()}
        rep.expect(not extra, f"{where} service minio-init GEOREC_BUCKETS", f"creates buckets regions.toml does not know: {sorted(extra)}")

    publish = services.get("model-publish")
    if rep.expect(publish is not None, where, "no service model-publish (publishes the first model)"):
        rep.equal(f"{where} service model-publish", "GEOREC_REPLICATION", env_of(publish).get("GEOREC_REPLICATION"),
                  "external" if replicated else "copy", "the storage layout of this combination")

    if replicated:
        rinit = services.get("minio-replication-init")
        if rep.expect(rinit is not None, where, "no service minio-replication-init"):
            env = env_of(rinit)
            at = f"{where} service minio-replication-init"
            rep.equal(at, "GEOREC_PRIMARY_BUCKET", env.get("GEOREC_PRIMARY_BUCKET"), primary["bucket"], "regions.toml primary.bucket")
            rep.equal(at, "GEOREC_PREFIX", env.get("GEOREC_PREFIX"), primary.get("prefix", ""), "regions.toml primary.prefix")
            specs = dict(s.split("=", 1) for s in env.get("GEOREC_REPLICAS", "").split())
            want = {r.name: f"http://minio-{r.name}:9000/{r.bucket}" for r in regions.values()}
            rep.equal(at, "GEOREC_REPLICAS", specs, want, "regions.toml (region -> its MinIO and bucket)")
        for r in regions.values():
            # Replication keeps object keys: a region prefix other than the primary's would
            # leave its replicas where its node never looks.
            rep.equal(f"regions.toml regions.{r.name}.s3.prefix", "prefix", r.prefix, primary.get("prefix", ""),
                      "primary.prefix (bucket replication keeps keys, so the replicated layout needs the same prefix)")


# ---------------------------------------------------------------------------- prometheus


def check_prometheus(rep: Report, root: Path, raw: dict, regions: dict[str, Region]) -> None:
    path = root / "deploy/prometheus/prometheus.yml"
    cfg = yaml.safe_load(path.read_text())
    jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}

    def targets(job: dict) -> dict[str, str | None]:
        out = {}
        for sc in job.get("static_configs", []):
            for t in sc.get("targets", []):
                out[t] = (sc.get("labels") or {}).get("region")
        return out

    where = str(path.relative_to(root))
    if rep.expect("region-node" in jobs, where, "no scrape job region-node"):
        found = targets(jobs["region-node"])
        want = {f"node-{r.name}:{r.port}": r.name for r in regions.values()}
        rep.equal(f"{where} job region-node", "targets (target -> region label)", found, want, "regions.toml (node-<region>:<listen port>)")
    if rep.expect("redis" in jobs, where, "no scrape job redis"):
        found = targets(jobs["redis"])
        want = {f"redis://redis-{r.name}:6379": r.name for r in regions.values()}
        rep.equal(f"{where} job redis", "targets (target -> region label)", found, want, "regions.toml (one Redis per region)")
    if rep.expect("router" in jobs, where, "no scrape job router"):
        router_port = port_of(raw.get("router", {}).get("listen", "127.0.0.1:8080"))
        rep.equal(f"{where} job router", "targets", list(targets(jobs["router"])), [f"router:{router_port}"], "regions.toml router.listen")

    extra = root / "deploy/prometheus/scrape.d/replicated-minio.yml"
    cfg = yaml.safe_load(extra.read_text())
    found = {}
    for job in cfg.get("scrape_configs", []):
        found.update(targets(job))
    want = {f"minio-{r.name}:9000": r.name for r in regions.values()}
    rep.equal(str(extra.relative_to(root)), "targets (target -> region label)", found, want, "regions.toml (one MinIO per region)")


# ---------------------------------------------------------------------------- terraform


def norm(v):
    """python-hcl2 output -> plain values (unwrap [x], strip quotes kept by newer versions)."""
    while isinstance(v, list) and len(v) == 1 and not isinstance(v[0], (str, int, float)):
        v = v[0]
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    if isinstance(v, dict):
        return {norm(k): norm(x) for k, x in v.items() if not str(k).startswith("__")}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def tf_locals(path: Path) -> dict:
    with path.open() as f:
        parsed = hcl2.load(f)
    out: dict = {}
    for block in parsed.get("locals", []):
        out.update(norm(block))
    return out


def check_terraform(rep: Report, root: Path, raw: dict, regions: dict[str, Region]) -> None:
    tf = root / "terraform"
    stacks = tf / "regions"
    found = sorted(p.name for p in stacks.iterdir() if p.is_dir()) if stacks.is_dir() else []
    rep.equal("terraform/regions/", "region stacks", found, sorted(regions), "regions.toml [regions.*]")
    router_port = port_of(raw.get("router", {}).get("listen", "127.0.0.1:8080"))

    reference: dict[str, str] | None = None
    reference_name = None
    for name in found:
        d = stacks / name
        f = d / "region.tf"
        where = str(f.relative_to(root))
        if not rep.expect(f.is_file(), where, "missing (the locals that tie this stack to regions.toml)"):
            continue
        loc = tf_locals(f)
        r = regions.get(name)
        rep.equal(where, "local.region", loc.get("region"), name, "the directory name")
        if r is not None:
            src = f"regions.toml regions.{name}"
            rep.equal(where, "local.cloud_region", loc.get("cloud_region"), r.cloud_region, f"{src}.cloud_region")
            rep.equal(where, "local.node_port", loc.get("node_port"), r.port, f"{src}.listen ({r.listen})")
            rep.equal(where, "local.bucket", loc.get("bucket"), r.bucket, f"{src}.s3.bucket")
            rep.equal(where, "local.prefix", loc.get("prefix"), r.prefix, f"{src}.s3.prefix")
        rep.equal(where, "local.all_regions", loc.get("all_regions"), sorted(regions), "regions.toml [regions.*]")
        rep.equal(where, "local.router_port", loc.get("router_port"), router_port, "regions.toml router.listen")

        # Every other .tf file is the same in every region stack: a fix made in one is made in all.
        files = {p.name: p.read_text() for p in sorted(d.glob("*.tf")) if p.name != "region.tf"}
        if reference is None:
            reference, reference_name = files, name
        else:
            for fname in sorted(set(files) | set(reference)):
                rep.expect(files.get(fname) == reference.get(fname), f"terraform/regions/{name}/{fname}",
                           f"differs from terraform/regions/{reference_name}/{fname} (only region.tf may differ between region stacks)")

    # Residency zones: the region stacks' default of residency_zones is what regions.toml says
    # (the image bakes regions.toml in; a zone set there and not in terraform, or the reverse,
    # would give the routers and nodes of a deployment different zones than the file).
    want_zones = {r.name: r.residency for r in regions.values() if r.residency}
    for name in found:
        f = stacks / name / "variables.tf"
        if not f.is_file():
            continue
        with f.open() as fh:
            variables = {k: v for block in hcl2.load(fh).get("variable", []) for k, v in block.items()}
        where = str(f.relative_to(root))
        if rep.expect("residency_zones" in variables, where, "no variable residency_zones (region -> residency zone)"):
            default = norm(variables["residency_zones"].get("default", {})) or {}
            rep.equal(where, "default of var.residency_zones", default, want_zones, "regions.toml [regions.*].residency")

    # Documented variables and outputs, everywhere.
    for f in sorted(tf.rglob("*.tf")):
        if ".terraform" in f.parts:
            continue
        with f.open() as fh:
            parsed = hcl2.load(fh)
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                for name, body in block.items():
                    rep.expect(bool(norm(body.get("description"))), str(f.relative_to(root)), f"{kind} {name!r} has no description")

    primary = raw["primary"]
    f = tf / "primary/cluster.tf"
    where = str(f.relative_to(root))
    if rep.expect(f.is_file(), where, "missing"):
        loc = tf_locals(f)
        rep.equal(where, "local.primary_bucket", loc.get("primary_bucket"), primary["bucket"], "regions.toml primary.bucket")
        rep.equal(where, "local.primary_prefix", loc.get("primary_prefix"), primary.get("prefix", ""), "regions.toml primary.prefix")
        rep.equal(where, "local.primary_cloud_region", loc.get("primary_cloud_region"), primary["cloud_region"], "regions.toml primary.cloud_region")
        want = {r.name: {"cloud_region": r.cloud_region, "bucket": r.bucket} for r in regions.values()}
        rep.equal(where, "local.regions", loc.get("regions"), want, "regions.toml [regions.*] cloud_region and s3.bucket")
        for r in regions.values():
            rep.equal(f"regions.toml regions.{r.name}.s3.prefix", "prefix", r.prefix, primary.get("prefix", ""),
                      "primary.prefix (terraform/primary gives every bucket the primary's prefix)")

    f = tf / "global/cluster.tf"
    where = str(f.relative_to(root))
    if rep.expect(f.is_file(), where, "missing"):
        loc = tf_locals(f)
        want = {r.name: r.cloud_region for r in regions.values()}
        rep.equal(where, "local.regions", loc.get("regions"), want, "regions.toml [regions.*].cloud_region")


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    ap.add_argument("--compose", default=None, help='compose command (default: "docker-compose", else "docker compose")')
    args = ap.parse_args()
    root = args.root.resolve()

    missing = [n for n, m in (("PyYAML", yaml), ("python-hcl2", hcl2)) if m is None]
    if missing:
        print(f"check-consistency: needs {' and '.join(missing)} (pip install checkov PyYAML)", file=sys.stderr)
        return 2
    if args.compose:
        compose = shlex.split(args.compose)
    elif subprocess.run(["sh", "-c", "command -v docker-compose"], capture_output=True).returncode == 0:
        compose = ["docker-compose"]
    else:
        compose = ["docker", "compose"]

    raw, regions = load_cluster(root / "regions.toml")
    rep = Report()
    for label, files, profiles, replicated in COMBINATIONS:
        try:
            cfg = compose_config(root, compose, files, profiles)
        except (RuntimeError, FileNotFoundError) as e:
            rep.expect(False, f"docker-compose [{label}]", str(e))
            continue
        check_compose(rep, label, cfg, raw, regions, replicated)
    check_prometheus(rep, root, raw, regions)
    check_terraform(rep, root, raw, regions)

    names = ", ".join(f"{r.name} ({r.cloud_region}, :{r.port}, redis :{r.redis_port}, {r.bucket})" for r in regions.values())
    if rep.problems:
        print(f"check-consistency: {len(rep.problems)} MISMATCH(ES) with regions.toml", file=sys.stderr)
        for p in rep.problems:
            print(f"  MISMATCH {p}", file=sys.stderr)
        print(f"regions.toml has: {names}", file=sys.stderr)
        return 1
    print(f"check-consistency: OK, {rep.checked} checks: {len(COMBINATIONS)} compose combinations, Prometheus targets, "
          f"{len(regions)} terraform region stacks, primary and global stacks agree with regions.toml")
    print(f"  regions: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
