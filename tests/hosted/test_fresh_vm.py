"""The hosted track, played on a fresh VM the way the platform runs it.

The VM (tests/hosted/vm.py) has a Docker engine with no images, Python, make
and git, and nothing of the lab. Two ways to get the lab onto it:

- from the bundle (`make bundle`), baked into the VM image, with no network at
  all: nothing may be built or downloaded;
- from a clone of a repository this test serves (`git daemon`, exported from
  the checkout's HEAD), with Debian's archive and PyPI reachable but no
  container registry: `make up` builds every image inside the VM.

Each way runs the track setup as root with no profile (`env -i`); then, for
each challenge in order, its setup, its check (which must fail), its solve,
and its check again (which must pass within 60 s); then the track setup
again, which must succeed and change nothing. The figures go to
build/test-hosted.json and are printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hints import SKIPPED_HINTS, assert_one_fail_line
from tests.hosted.vm import ROOT, FreshVM, Run, docker, vm_image

pytestmark = pytest.mark.hosted

BUNDLE = ROOT / "build" / "crashlab-bundle.tar.gz"
FIGURES = ROOT / "build" / "test-hosted.json"
CHALLENGES = sorted(p.name for p in (ROOT / "track").iterdir() if re.match(r"\d\d-", p.name))
CHECK_TIME_LIMIT = 60
LAB_DIR = "/workspace/crashlab"
# The track's settings (track/config.yml), and the solve scripts' shorter waits.
SCRIPT_ENV = {
    "LAB_DIR": LAB_DIR,
    "COMPOSE_PROJECT_NAME": "crashlab",
    "PRINT_PAUSE_SECONDS": "0.3",
    "PAUSE_SECONDS": "12",
    "BANK_LATENCY_MS": "2000",
}


def say(line: str) -> None:
    print(f"    {line}", flush=True)


def record(way: str, figures: dict[str, float]) -> None:
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[way] = figures
    FIGURES.write_text(json.dumps(known, indent=2) + "\n")


@pytest.fixture(scope="module")
def image() -> str:
    return vm_image()


def ship_track(vm: FreshVM) -> None:
    """Only the lifecycle scripts travel with a track: the platform puts them on the VM."""
    track = ROOT / "track"
    scripts = {name: track / name for name in ["track_scripts", *CHALLENGES]}
    vm.put_tree(scripts, "/opt/track")


def track_setup(vm: FreshVM, settings: dict[str, str], timeout: float) -> Run:
    done = vm.run(["bash", "/opt/track/track_scripts/setup-workshop-host"], settings, timeout)
    assert done.code == 0, f"the track setup failed: {done}"
    return done


def make_up_seconds(setup: Run) -> float:
    """How long the setup's `make up` took (it says so), from the lab in place to healthy."""
    found = re.search(r"make up: (\d+) s from the lab", setup.stdout)
    assert found, setup
    return float(found.group(1))


def play_every_challenge(vm: FreshVM) -> dict[str, float]:
    """Setup, check (fails), solve, check (passes within 60 s), for each challenge in order."""
    checks: dict[str, float] = {}
    for challenge in CHALLENGES:
        say(f"{challenge}: setup, check (must fail), solve, check (must pass)...")

        def script(kind: str, timeout: float, name: str = challenge) -> Run:
            path = f"/opt/track/{name}/{kind}-workshop-host"
            return vm.run(["bash", path], SCRIPT_ENV, timeout)

        setup = script("setup", 180)
        assert setup.code == 0, f"{challenge} setup: {setup}"
        before = script("check", CHECK_TIME_LIMIT)
        assert before.code != 0, f"{challenge} check passed before the solve: {before}"
        assert_one_fail_line(before.stdout, SKIPPED_HINTS[challenge])
        solve = script("solve", 300)
        assert solve.code == 0, f"{challenge} solve: {solve}"
        after = script("check", CHECK_TIME_LIMIT)
        assert after.code == 0, f"{challenge} check failed after the solve: {after}"
        assert after.seconds < CHECK_TIME_LIMIT, f"{challenge} check took {after.seconds:.0f} s"
        checks[challenge] = round(max(before.seconds, after.seconds), 1)
    return checks


def rebuild_after_an_edit(vm: FreshVM) -> Run:
    """After an edit to the services, `make up` builds, offline, on the bundle's runtime."""
    edit = f"echo '# edited on the VM' >>{LAB_DIR}/services/bank/__init__.py"
    assert vm.sh(edit).code == 0
    env = {"PATH": "/usr/bin:/bin", "LAB_BIND_ADDRESS": "0.0.0.0"}
    up = vm.run(["bash", "-c", f"cd {LAB_DIR} && make up"], env, 600)
    assert up.code == 0, f"make up after an edit: {up}"
    assert "source changed since the bundle was made" in up.stdout, up
    assert "Building the service images" in up.stdout, up
    return up


def test_track_from_the_bundle_with_no_network(image: str) -> None:
    assert BUNDLE.exists(), "No bundle: run `make bundle` first (make test-hosted does)."
    size_mb = BUNDLE.stat().st_size / 1e6
    with FreshVM(image, network="none") as vm:
        say(f"Fresh VM {vm.name}, no network; the bundle ({size_mb:.0f} MB) baked into its image.")
        vm.copy_in(BUNDLE, "/opt/crashlab")
        ship_track(vm)
        settings = {"LAB_BUNDLE": "/opt/crashlab/crashlab-bundle.tar.gz", **SCRIPT_ENV}
        say("Track setup (unpack, .venv from the bundle's wheels, docker load, make up)...")
        first = track_setup(vm, settings, timeout=600)
        say(f"Track playable {first.seconds:.0f} s after the setup started.")
        assert "Loading the lab's images from the bundle" in first.stdout, first
        assert "Building" not in first.stdout, f"the bundle built something: {first}"
        figures = {
            "bundle_mb": round(size_mb),
            "track_setup_s": round(first.seconds, 1),
            "make_up_s": make_up_seconds(first),
        }
        record("bundle", figures)
        checks = play_every_challenge(vm)
        again = track_setup(vm, settings, timeout=300)
        assert "already in" in again.stdout, again
        assert "Loading" not in again.stdout, f"the second setup loaded the images again: {again}"
        say(f"Second track setup: {again.seconds:.0f} s, nothing changed.")
        say("A change to the services' code: make up builds again, still offline...")
        rebuilt = rebuild_after_an_edit(vm)
        say(f"Rebuilt and up in {rebuilt.seconds:.0f} s.")
    figures["second_setup_s"] = round(again.seconds, 1)
    figures["slowest_check_s"] = max(checks.values())
    figures["rebuild_after_edit_s"] = round(rebuilt.seconds, 1)
    record("bundle", figures)
    say(f"From the bundle, offline: {figures}")


@pytest.fixture
def repository() -> Iterator[tuple[str, str, str]]:
    """A network of this machine's own, and the checkout's HEAD served on it by `git daemon`.

    Yields (network, repository URL, commit). The VM on this network reaches
    Debian's archive and PyPI through the engine's NAT, and no registry answers.
    """
    network = f"crashlab-hosted-{uuid.uuid4().hex[:8]}"
    served = ROOT / "build" / network
    bare = served / "crashlab.git"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(bare)], check=True)
    docker("network", "create", network)
    server = f"{network}-git"
    try:
        docker(
            "run", "--detach", "--name", server, "--network", network,
            "-v", f"{served}:/srv:ro", vm_image(),
            "git", "daemon", "--reuseaddr", "--export-all", "--base-path=/srv", "/srv",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while subprocess.run(
            ["docker", "exec", server, "git", "ls-remote", "git://127.0.0.1/crashlab.git"],
            capture_output=True, check=False,
        ).returncode:  # fmt: skip
            assert time.monotonic() < deadline, "git daemon did not answer within 30 s"
            time.sleep(0.2)
        yield network, f"git://{server}/crashlab.git", commit
    finally:
        subprocess.run(["docker", "rm", "--force", server], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(served)], check=False)


def trust_this_networks_authorities(vm: FreshVM) -> None:
    """Where this machine reaches PyPI through a TLS-inspecting proxy, the VM trusts it too.

    A VM image made for such a network has its certificate authorities; pip and
    uv are told to use the system's store (bookworm's pip and uv carry their own).
    """
    extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for cert in extra:
        vm.copy_in(cert, "/usr/local/share/ca-certificates")
    script = (
        "update-ca-certificates >/dev/null"
        " && printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' >/etc/pip.conf"
        " && mkdir -p /etc/uv && printf 'native-tls = true\\n' >/etc/uv/uv.toml"
    )
    if extra:
        assert vm.sh(script).code == 0


def test_track_from_a_clone(image: str, repository: tuple[str, str, str]) -> None:
    network, url, commit = repository
    with FreshVM(image, network=network) as vm:
        say(f"Fresh VM {vm.name}, on {network}: Debian and PyPI reachable, no registry.")
        trust_this_networks_authorities(vm)
        ship_track(vm)
        settings = {"LAB_REPO_URL": url, "LAB_REF": commit, **SCRIPT_ENV}
        say("Track setup (clone, .venv from PyPI, every image built in the VM)...")
        first = track_setup(vm, settings, timeout=1800)
        say(f"Track playable {first.seconds:.0f} s after the setup started.")
        assert "No bundle at" in first.stdout, f"no word of the missing bundle: {first}"
        assert "No container registry answers" in first.stdout + first.stderr, first
        head = vm.sh(f"git -C {LAB_DIR} rev-parse HEAD").stdout.strip()
        assert head == commit
        figures = {"track_setup_s": round(first.seconds, 1), "make_up_s": make_up_seconds(first)}
        record("clone", figures)
        checks = play_every_challenge(vm)
        again = track_setup(vm, settings, timeout=600)
        assert "already in" in again.stdout, again
        say(f"Second track setup: {again.seconds:.0f} s, nothing changed.")
    figures["second_setup_s"] = round(again.seconds, 1)
    figures["slowest_check_s"] = max(checks.values())
    record("clone", figures)
    say(f"From a clone: {figures}")
