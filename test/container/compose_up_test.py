"""compose.yaml really starts, with podman and no image registry.

scripts/images builds every image compose.yaml needs (a debootstrap Debian base, the postgres:15
stand-in, shardurl compiled inside a container); `podman-compose up -d` then serves the tutorial's
calls on 127.0.0.1:5001 from three PostgreSQL shards in containers; a stopped shard container
costs only its own keys, which answer 503 at once and come back when it starts again (their rows
kept in its volume); shardurl stops cleanly on SIGTERM; `podman-compose down -v` leaves no
container, volume or listening port behind.

    SHARDURL_CONTAINER_TESTS=1 /usr/bin/python3 compose_up_test.py REPO

Without SHARDURL_CONTAINER_TESTS=1 it exits 77 (CTest: skipped): the first run takes several
minutes (debootstrap, apt in containers, compiling shardurl). It publishes shardurl and the three
shards on 127.0.0.1 at SHARDURL_CONTAINER_TEST_PORTS (default 5001,5432,5433,5434: compose.yaml's
own), through compose.yaml's SHARDURL_HTTP_PORT and SHARDURL_SHARD_NNNN_PORT, and refuses to
start when one of them is taken. Its podman-compose project is shardurl-ctest-HTTPPORT, so runs
on different ports do not meet. Whatever happens, it ends with `down -v` and removes what is
left of its project.
"""
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

SHARDS = ["5432", "5433", "5434"]
PORTS = [int(p) for p in
         os.environ.get("SHARDURL_CONTAINER_TEST_PORTS", "5001,5432,5433,5434").split(",")]
HTTP_PORT = PORTS[0]
SHARD_PORT = dict(zip(SHARDS, PORTS[1:]))  # shard name -> its published port on the host
PROJECT = f"shardurl-ctest-{HTTP_PORT}"
STOPPED = "5433"
README_URLS = ["https://www.postgresql.org/", "https://www.google.com/", "https://www.dev.to/"]

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def say(msg):
    print(f"compose_up: {msg}", flush=True)


class Fatal(Exception):
    """A step the rest of the test cannot do without."""


def run(args, timeout, env, log=None, cwd=None):
    """Runs a command with a bound; returns (exit code, output). Output goes to LOG if given."""
    try:
        p = subprocess.run(args, cwd=cwd, env=env, timeout=timeout, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise Fatal(f"{' '.join(args[:4])} ... still running after {timeout} s; last output:\n"
                    + "\n".join(out.splitlines()[-30:]))
    if log:
        with open(log, "w") as f:
            f.write(p.stdout)
    return p.returncode, p.stdout


def compose_ok(out):
    """podman-compose 1.0.3 exits 0 even when a podman command fails; it prints their codes."""
    codes = [line for line in out.splitlines() if line.startswith("exit code:")]
    return all(c == "exit code: 0" for c in codes)


def request(method, path, timeout=5.0):
    """One request on a fresh connection: (status, headers, parsed JSON or raw body, seconds)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read()
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return r.status, dict(r.getheaders()), body, time.monotonic() - start
    finally:
        conn.close()


def request_or_none(method, path, timeout=5.0):
    try:
        return request(method, path, timeout)
    except OSError:
        return None


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what, timeout, probe):
    """Polls PROBE (truthy when done) every 0.25 s for at most TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Fatal(f"{what}: not after {timeout} s")
        time.sleep(0.25)


def psql(port, sql, env):
    e = dict(env, PGPASSWORD="postgres", PGCONNECT_TIMEOUT="5")
    code, out = run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                     "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], 30, e)
    return out.strip() if code == 0 else f"psql failed ({code}): {out.strip()}"


def main():
    if os.environ.get("SHARDURL_CONTAINER_TESTS") != "1":
        print("compose_up: skipped (set SHARDURL_CONTAINER_TESTS=1; it builds container images "
              "and takes minutes)")
        return 77
    repo = os.path.abspath(sys.argv[1])
    env = dict(os.environ)
    if len(PORTS) != 4:
        print("compose_up: SHARDURL_CONTAINER_TEST_PORTS needs four ports: HTTP,SHARD1,SHARD2,SHARD3")
        return 2
    env.setdefault("CONTAINERS_CONF", os.path.join(repo, "server/container/containers.conf"))
    env["SHARDURL_HTTP_PORT"] = str(HTTP_PORT)
    for shard, port in SHARD_PORT.items():
        env[f"SHARDURL_SHARD_{shard}_PORT"] = str(port)
    compose = ["podman-compose", "-p", PROJECT, "-f", os.path.join(repo, "compose.yaml")]
    logdir = os.environ.get("SHARDURL_CONTAINER_TEST_LOGS", "/tmp/shardurl-compose-up-test")
    os.makedirs(logdir, exist_ok=True)

    taken = [p for p in PORTS if port_open(p)]
    if taken:
        print(f"compose_up: FAIL: 127.0.0.1 port(s) {taken} already in use (scripts/run, or another "
              f"compose stack?): this test publishes {PORTS} (SHARDURL_CONTAINER_TEST_PORTS)",
              flush=True)
        return 1

    t_start = time.monotonic()
    try:
        # A run killed half-way may have left its project behind.
        cleanup(compose, env, quiet=True)
        test(repo, compose, env, logdir)
    except Fatal as e:
        check("the stack", False, str(e))
        dump_logs(env)
    finally:
        cleanup(compose, env)
        left = run(["podman", "ps", "-aq", "--filter", f"label=io.podman.compose.project={PROJECT}"],
                   60, env)[1].split()
        check("nothing of the project is left after cleanup", not left, f"containers {left}")
    say(f"whole test: {time.monotonic() - t_start:.0f} s (logs in {logdir})")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def test(repo, compose, env, logdir):
    # 1. The images, with no registry.
    t = time.monotonic()
    code, out = run([os.path.join(repo, "scripts/images"), "-p", PROJECT], 3600, env,
                    log=f"{logdir}/images.log")
    if code != 0:
        raise Fatal("scripts/images failed:\n" + "\n".join(out.splitlines()[-40:]))
    say(f"scripts/images: {time.monotonic() - t:.0f} s")
    for image in ["debian:bookworm", "debian:bookworm-slim", "postgres:15", f"{PROJECT}_shardurl"]:
        code, size = run(["podman", "image", "inspect", "--format", "{{.Size}}", image], 60, env)
        if check(f"scripts/images made {image}", code == 0, size.strip()):
            say(f"image {image}: {int(size) / 1e6:.0f} MB")

    stand_in_contract(env)

    # 2. Up.
    t = time.monotonic()
    code, out = run(compose + ["up", "-d"], 600, env, log=f"{logdir}/up.log")
    if code != 0 or not compose_ok(out):
        raise Fatal("podman-compose up -d failed:\n" + "\n".join(out.splitlines()[-30:]))

    def ready():
        r = request_or_none("GET", "/readyz", 2)
        return r and r[0] == 200 and all(
            r[2].get("shards", {}).get(s, {}).get("state") == "up" for s in SHARDS) and r
    wait_for("shardurl answers /readyz 200 with every shard up", 180, ready)
    say(f"up -d until every shard is up: {time.monotonic() - t:.0f} s")

    # 3. The tutorial's calls: creates land on every shard, and are read back and redirected.
    links = {}  # url_id -> (url, shard)
    run_tag = uuid.uuid4().hex[:8]
    urls = README_URLS + [f"https://example.com/compose/{run_tag}/{i}" for i in range(60)]
    for url in urls:
        r = request("POST", f"/urls?full_url={url}")
        if not check(f"POST /urls?full_url={url} answers 200", r[0] == 200, f"{r[0]} {r[2]}"):
            continue
        body = r[2]
        ok = (isinstance(body, dict) and body.get("url") == url
              and body.get("server", {}).get("hostname") in SHARDS and body.get("url_id"))
        if check(f"POST {url}: the tutorial's JSON", ok, str(body)):
            links[body["url_id"]] = (url, body["server"]["hostname"])
    by_shard = {s: [i for i, (_, sh) in links.items() if sh == s] for s in SHARDS}
    if not all(by_shard.values()):
        raise Fatal(f"63 creates did not reach every shard: { {s: len(v) for s, v in by_shard.items()} }")
    r = request("POST", f"/urls?full_url={README_URLS[1]}")
    again = [i for i, (u, _) in links.items() if u == README_URLS[1]]
    check("the same URL again gives the same id", r[0] == 200 and [r[2].get("url_id")] == again,
          f"{r[0]} {r[2]} vs {again}")
    for url_id, (url, shard) in links.items():
        r = request("GET", f"/urls/{url_id}")
        check(f"GET /urls/{url_id}", r[0] == 200 and r[2].get("url") == url
              and r[2]["server"]["hostname"] == shard, f"{r[0]} {r[2]}")
        r = request("GET", f"/{url_id}")
        check(f"GET /{url_id} redirects", r[0] == 302 and r[1].get("Location") == url,
              f"{r[0]} {r[1].get('Location')}")
    r = request("GET", "/urls/nOsUcH1")
    check("an unknown id is 404 with the tutorial's detail",
          r[0] == 404 and r[2] == {"detail": "Url with id: nOsUcH1 was not found"}, f"{r[0]} {r[2]}")

    # 4. Each row is on the shard the answer named, reached through its published port with the
    #    compose file's password (so initdb/ ran there, and scram authentication works).
    for shard in SHARDS:
        ids = ",".join(f"'{i}'" for i in by_shard[shard])
        got = psql(SHARD_PORT[shard], f"SELECT count(*) FROM url_table WHERE url_id IN ({ids})", env)
        check(f"shard {shard} holds its {len(by_shard[shard])} rows", got == str(len(by_shard[shard])), got)
        got = psql(SHARD_PORT[shard], "SHOW wal_level", env)
        check(f"shard {shard} runs compose.yaml's command (wal_level=logical)", got == "logical", got)

    # 5. The health checks pass (podman runs them on demand: there is no systemd to schedule them).
    for service in ["shard-5432", "shard-5433", "shard-5434", "shardurl"]:
        code, out = run(["podman", "healthcheck", "run", f"{PROJECT}_{service}_1"], 60, env)
        check(f"{service}'s health check passes", code == 0, out.strip())

    # 6. A stopped shard costs only its own keys.
    code, out = run(compose + ["stop", f"shard-{STOPPED}"], 120, env, log=f"{logdir}/stop.log")
    if code != 0 or not compose_ok(out):
        raise Fatal(f"podman-compose stop shard-{STOPPED} failed:\n{out}")
    gone = by_shard[STOPPED]

    def refused():
        r = request_or_none("GET", f"/urls/{gone[0]}", 5)
        return r and r[0] == 503
    wait_for(f"shard {STOPPED}'s keys answer 503", 15, refused)
    for url_id in gone:
        r = request("GET", f"/urls/{url_id}")
        check(f"stopped shard: GET /urls/{url_id} is 503 at once",
              r[0] == 503 and r[2] == {"detail": f"shard {STOPPED} unavailable"} and r[3] < 1.0,
              f"{r[0]} {r[2]} in {r[3]:.2f} s")
    for shard in SHARDS:
        if shard == STOPPED:
            continue
        for url_id in by_shard[shard]:
            url = links[url_id][0]
            r = request("GET", f"/{url_id}")
            check(f"stopped {STOPPED}: GET /{url_id} on {shard} still redirects",
                  r[0] == 302 and r[1].get("Location") == url, f"{r[0]} {r[2]}")
    created_while_down = {}
    for i in range(20):
        url = f"https://example.com/compose/{run_tag}/down/{i}"
        r = request("POST", f"/urls?full_url={url}")
        if r[0] == 200:
            check(f"a create during the outage lands on a live shard ({url})",
                  r[2]["server"]["hostname"] != STOPPED, str(r[2]))
            created_while_down[r[2]["url_id"]] = url
        else:
            check(f"a create during the outage that the stopped shard owns is 503 ({url})",
                  r[0] == 503 and r[2] == {"detail": f"shard {STOPPED} unavailable"} and r[3] < 1.0,
                  f"{r[0]} {r[2]} in {r[3]:.2f} s")
    check("creates during the outage succeed on the live shards", bool(created_while_down))
    r = request("GET", "/readyz")
    check(f"/readyz is 503 naming shard {STOPPED}",
          r[0] == 503 and r[2]["shards"][STOPPED]["state"] == "down"
          and all(r[2]["shards"][s]["state"] == "up" for s in SHARDS if s != STOPPED), f"{r[0]} {r[2]}")

    # 7. It starts again, and its keys (kept in its volume) come back.
    t = time.monotonic()
    code, out = run(compose + ["start", f"shard-{STOPPED}"], 120, env, log=f"{logdir}/start.log")
    if code != 0 or not compose_ok(out):
        raise Fatal(f"podman-compose start shard-{STOPPED} failed:\n{out}")

    def back():
        r = request_or_none("GET", f"/urls/{gone[0]}", 5)
        return r and r[0] == 200
    wait_for(f"shard {STOPPED}'s keys answer again after it starts", 60, back)
    say(f"shard {STOPPED} back {time.monotonic() - t:.1f} s after podman-compose start")
    for url_id in gone:
        url = links[url_id][0]
        r = request("GET", f"/{url_id}")
        check(f"restarted {STOPPED}: GET /{url_id} redirects again",
              r[0] == 302 and r[1].get("Location") == url, f"{r[0]} {r[2]}")
    for url_id, url in created_while_down.items():
        r = request("GET", f"/urls/{url_id}")
        check(f"a link created during the outage is there ({url_id})",
              r[0] == 200 and r[2].get("url") == url, f"{r[0]} {r[2]}")
    check("/readyz is 200 again", request("GET", "/readyz")[0] == 200)

    # 8. shardurl, PID 1 in its container, stops on SIGTERM well before podman's kill.
    t = time.monotonic()
    container = f"{PROJECT}_shardurl_1"
    code, out = run(["podman", "stop", "-t", "20", container], 60, env)
    took = time.monotonic() - t
    code, exit_code = run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container], 60, env)
    check("shardurl exits 0 on SIGTERM, within 10 s", exit_code.strip() == "0" and took < 10,
          f"exit code {exit_code.strip()} after {took:.1f} s")

    # 9. Down: nothing left.
    t = time.monotonic()
    code, out = run(compose + ["down", "-v"], 300, env, log=f"{logdir}/down.log")
    check("podman-compose down -v succeeds", code == 0 and compose_ok(out), out[-2000:])
    say(f"down -v: {time.monotonic() - t:.0f} s")
    left = run(["podman", "ps", "-aq", "--filter", f"label=io.podman.compose.project={PROJECT}"],
               60, env)[1].split()
    check("down leaves no container", not left, str(left))
    vols = run(["podman", "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}"],
               60, env)[1].split()
    check("down -v leaves no volume", not vols, str(vols))
    still = [p for p in PORTS if port_open(p)]
    check(f"down closes {PORTS}", not still, str(still))


def stand_in_contract(env):
    """The postgres:15 stand-in keeps the official image's contract beyond what compose.yaml uses:
    POSTGRES_USER and POSTGRES_DB, *.sh executed or sourced, *.sql.gz, other files ignored, `-c`
    alone as the command, no second initialisation on a restart, and a refusal without a
    password."""
    code, label = run(["podman", "image", "inspect", "--format",
                       '{{index .Labels "shardurl.stand-in"}}', "postgres:15"], 60, env)
    if label.strip() != "postgres:15":
        say("postgres:15 is not the stand-in (a registry's image): its contract is not checked")
        return
    code, out = run(["podman", "run", "--rm", "--label", f"io.podman.compose.project={PROJECT}",
                     "postgres:15"], 120, env)
    check("the stand-in refuses to initialise without POSTGRES_PASSWORD",
          code != 0 and "POSTGRES_PASSWORD" in out, f"exit {code}: {out[-500:]}")

    port = SHARD_PORT["5432"]
    name = f"{PROJECT}_standin"
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        files = {
            "1_table.sql": "CREATE TABLE t (v text);\nINSERT INTO t VALUES ('sql');\n",
            "2_exec.sh": "#!/bin/bash\nset -e\npsql -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" "
                         "-d \"$POSTGRES_DB\" -c \"INSERT INTO t VALUES ('exec')\"\n",
            "3_sourced.sh": "psql -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" "
                            "-c \"INSERT INTO t VALUES ('sourced')\"\n",
            "5_ignored.txt": "INSERT INTO t VALUES ('ignored');\n",
        }
        for fname, text in files.items():
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)
            os.chmod(os.path.join(d, fname), 0o755 if fname == "2_exec.sh" else 0o644)
        with gzip.open(os.path.join(d, "4_data.sql.gz"), "wt") as f:
            f.write("INSERT INTO t VALUES ('gz');\n")
        os.chmod(os.path.join(d, "4_data.sql.gz"), 0o644)
        code, out = run(["podman", "run", "-d", "--name", name,
                         "--label", f"io.podman.compose.project={PROJECT}",
                         "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_USER=alice",
                         "-e", "POSTGRES_DB=shop", "-v", f"{d}:/docker-entrypoint-initdb.d:ro",
                         "-p", f"127.0.0.1:{port}:5432", "postgres:15", "-c", "max_connections=42"],
                        120, env)
        if not check("the stand-in starts", code == 0, out):
            return
        try:
            query = ("SELECT string_agg(v, ',' ORDER BY v) || ' ' || current_setting('max_connections') "
                     "FROM t")
            e = dict(env, PGPASSWORD="s3cret", PGCONNECT_TIMEOUT="3")
            args = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "alice", "-d", "shop", "-XAtq",
                    "-c", query]
            expected = "exec,gz,sourced,sql 42"

            def answers():
                code, out = run(args, 30, e)
                return code == 0 and out.strip()
            try:
                got = wait_for("the stand-in takes TCP connections", 60, answers)
            except Fatal as err:
                _, logs = run(["podman", "logs", "--tail", "30", name], 60, env)
                check("the stand-in takes TCP connections", False, f"{err}\n{logs}")
                return
            check("the stand-in ran *.sql, *.sh (executed and sourced), *.sql.gz and not *.txt, "
                  "as POSTGRES_USER in POSTGRES_DB, with `-c` as the command", got == expected, got)
            code, out = run(args, 30, dict(e, PGPASSWORD="wrong"))
            check("the stand-in refuses a wrong password over TCP",
                  code != 0 and "password authentication failed" in out, out)
            code, out = run(["podman", "restart", "-t", "10", name], 120, env)
            check("the stand-in restarts", code == 0, out)
            try:
                got = wait_for("the stand-in answers after a restart", 60, answers)
            except Fatal as err:
                got = str(err)
            check("a restart keeps the data and initialises nothing again", got == expected, got)
            say("postgres:15 stand-in: its entrypoint contract checked")
        finally:
            run(["podman", "rm", "-f", "-v", "-t", "0", name], 120, env)


def dump_logs(env):
    code, out = run(["podman", "ps", "-a", "--format", "{{.Names}}",
                     "--filter", f"label=io.podman.compose.project={PROJECT}"], 60, env)
    for name in out.split():
        _, logs = run(["podman", "logs", "--tail", "30", name], 60, env)
        print(f"--- podman logs --tail 30 {name}\n{logs}", flush=True)


def cleanup(compose, env, quiet=False):
    """down -v, then whatever a failed down left: containers, volumes, the network."""
    try:
        run(compose + ["down", "-v"], 300, env)
    except Fatal as e:
        if not quiet:
            print(f"compose_up: cleanup: {e}", flush=True)
    label = f"label=io.podman.compose.project={PROJECT}"
    for kind, ls in [("container", ["ps", "-aq", "--filter", label]),
                     ("volume", ["volume", "ls", "-q", "--filter", label])]:
        names = run(["podman", *ls], 60, env)[1].split()
        if names:
            rm = ["rm", "-f", "-t", "0"] if kind == "container" else ["volume", "rm", "-f"]
            run(["podman", *rm, *names], 120, env)
    # podman-compose 1.0.3 creates PROJECT_default and never removes it.
    run(["podman", "network", "rm", "-f", f"{PROJECT}_default"], 60, env)


if __name__ == "__main__":
    sys.exit(main())
