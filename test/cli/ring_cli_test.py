#!/usr/bin/python3
"""`shardurl ring --config FILE` against Debian's python3-uhashring, over the real binary.

Usage: /usr/bin/python3 test/cli/ring_cli_test.py PATH/TO/shardurl
"""
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import threading
import unittest

from uhashring import HashRing

SHARDURL = None
POOL = "abcXYZ019-_+/=. éüßшардключ節点鍵🙂🚀\u0301\u200d"


def write_config(doc):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")
    if isinstance(doc, str):
        f.write(doc)
    else:
        json.dump(doc, f, ensure_ascii=False)
    f.close()
    return f.name


def run_ring(config_path, stdin_bytes):
    return subprocess.run([SHARDURL, "ring", "--config", config_path], input=stdin_bytes,
                          capture_output=True, timeout=60)


class RandomRings(unittest.TestCase):
    def test_random_rings_match_uhashring(self):
        rng = random.Random(int.from_bytes(os.urandom(4), "little"))
        for round_ in range(40):
            hash_name = rng.choice(["md5", "ketama"])
            count = rng.randint(1, 12)
            names = set()
            while len(names) < count:
                names.add("".join(rng.choice(POOL.replace(" ", "")) for _ in range(rng.randint(1, 10))))
            shards, conf = [], {}
            for name in names:
                shard, entry = {"name": name, "conninfo": "host=127.0.0.1"}, {}
                if rng.random() < 0.5:
                    shard["weight"] = entry["weight"] = rng.randint(1, 6)
                if rng.random() < 0.4:
                    shard["vnodes"] = entry["vnodes"] = rng.randint(1, 300)
                shards.append(shard)
                conf[name] = entry
            doc = {"ring": {"hash": hash_name}, "shards": shards}
            kwargs = {"hash_fn": "ketama"} if hash_name == "ketama" else {}
            if rng.random() < 0.5:
                doc["ring"]["vnodes"] = kwargs["vnodes"] = rng.randint(1, 250)
            reference = HashRing(nodes=conf, **kwargs)
            keys = ["", "0OGWo", "ab/cd"] + [
                "".join(rng.choice(POOL) for _ in range(rng.choice([1, 5, 7, 20, 400])))
                for _ in range(500)]
            with self.subTest(round=round_, doc=doc):
                path = write_config(doc)
                try:
                    out = run_ring(path, "".join(k + "\n" for k in keys).encode())
                finally:
                    os.unlink(path)
                self.assertEqual(out.returncode, 0, out.stderr)
                lines = out.stdout.decode().split("\n")
                self.assertEqual(lines[-1], "")
                expected = [f"{k}\t{reference.get_node(k)}" for k in keys]
                self.assertEqual(lines[:-1], expected)


class Streaming(unittest.TestCase):
    def setUp(self):
        self.path = write_config({"shards": [{"name": "5432"}, {"name": "5433"}, {"name": "5434"}]})

    def tearDown(self):
        os.unlink(self.path)

    def test_answers_each_key_before_the_next_arrives(self):
        proc = subprocess.Popen([SHARDURL, "ring", "--config", self.path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        reference = HashRing(nodes=["5432", "5433", "5434"])
        try:
            for key in ["0OGWo", "first", "second", ""]:
                proc.stdin.write(key.encode() + b"\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], 5)
                self.assertTrue(ready, f"no answer for {key!r} within 5 s")
                self.assertEqual(proc.stdout.readline().decode(), f"{key}\t{reference.get_node(key)}\n")
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
            proc.stdout.close()
        self.assertEqual(proc.returncode, 0)

    def peak_rss_kib(self, key_count):
        """Feeds key_count keys while draining the answers; returns (answer lines, peak RSS)."""
        proc = subprocess.Popen([SHARDURL, "ring", "--config", self.path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        chunk = "".join(f"key-{i}\n" for i in range(10000)).encode()

        def feed():
            for _ in range(key_count // 10000):
                proc.stdin.write(chunk)
            proc.stdin.close()

        writer = threading.Thread(target=feed)
        writer.start()
        with proc.stdout:
            lines = sum(1 for _ in proc.stdout)
        writer.join()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.assertEqual(proc.returncode, 0)
        return lines, usage.ru_maxrss

    def test_a_million_keys_in_constant_memory(self):
        small_lines, small_peak = self.peak_rss_kib(10_000)
        lines, peak = self.peak_rss_kib(1_000_000)
        self.assertEqual((small_lines, lines), (10_000, 1_000_000))
        # Buffering a million keys would take tens of MB more than ten thousand do.
        self.assertLess(peak - small_peak, 2 * 1024, f"peak RSS {small_peak} KiB -> {peak} KiB")


class EmbeddedDefault(unittest.TestCase):
    def test_without_config_the_tutorials_three_shards_place_keys(self):
        keys = ["0OGWo", "cSZsgRV", "", "ab/cd"]
        out = subprocess.run([SHARDURL, "ring"], input="".join(k + "\n" for k in keys).encode(),
                             capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        reference = HashRing(nodes=["5432", "5433", "5434"])
        self.assertEqual(out.stdout.decode().splitlines(),
                         [f"{k}\t{reference.get_node(k)}" for k in keys])
        printed = subprocess.run([SHARDURL, "config"], capture_output=True, timeout=10)
        doc = json.loads(printed.stdout)
        self.assertEqual(doc["listen"], "127.0.0.1:5001")
        self.assertEqual([s["name"] for s in doc["shards"]], ["5432", "5433", "5434"])


class PlacementSql(unittest.TestCase):
    def test_sql_names_the_ring_points_of_one_shard(self):
        out = subprocess.run([SHARDURL, "ring", "--sql", "5433"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith("width_bucket(decode(md5(url_id), 'hex'), ARRAY['\\x"))
        # 480 points of 16 bytes: the default ring of three shards, 160 vnodes each.
        self.assertEqual(out.stdout.count("'\\x"), 480)
        others = subprocess.run([SHARDURL, "ring", "--sql", "5432"], capture_output=True, text=True)
        self.assertNotEqual(out.stdout, others.stdout)
        missing = subprocess.run([SHARDURL, "ring", "--sql", "nope"], capture_output=True, text=True)
        self.assertEqual(missing.returncode, 2)
        self.assertIn("no shard named 'nope'", missing.stderr)


class ConfigErrors(unittest.TestCase):
    CASES = [
        ("missing shards", {"ring": {"hash": "md5"}}, "shards"),
        ("empty shards", {"shards": []}, "shards"),
        ("duplicate names", {"shards": [{"name": "a"}, {"name": "a"}]}, "shards[1].name"),
        ("weight 0", {"shards": [{"name": "a", "weight": 0}]}, "shards[0].weight"),
        ("negative weight", {"shards": [{"name": "a", "weight": -3}]}, "shards[0].weight"),
        ("unknown hash", {"ring": {"hash": "crc32"}, "shards": [{"name": "a"}]}, "ring.hash"),
        ("zero vnodes", {"shards": [{"name": "a", "vnodes": 0}]}, "shards[0].vnodes"),
        ("not JSON", "{\"shards\": [", "not valid JSON"),
    ]

    def test_each_error_exits_2_with_one_line_naming_the_field(self):
        for title, doc, field in self.CASES:
            with self.subTest(title):
                path = write_config(doc)
                try:
                    out = run_ring(path, b"key\n")
                finally:
                    os.unlink(path)
                self.assertEqual(out.returncode, 2)
                self.assertEqual(out.stdout, b"")
                err = out.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(field, err)
                self.assertIn(path, err)

    def test_missing_file_and_bad_usage_exit_2(self):
        out = run_ring("/nonexistent/shardurl.json", b"")
        self.assertEqual(out.returncode, 2)
        self.assertIn("/nonexistent/shardurl.json", out.stderr.decode())
        out = subprocess.run([SHARDURL, "ring", "--verbose"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--verbose", out.stderr.decode())
        out = subprocess.run([SHARDURL, "frobnicate"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)


if __name__ == "__main__":
    SHARDURL = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
