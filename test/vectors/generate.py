#!/usr/bin/python3
"""Writes ring_vectors.json: where Debian's python3-uhashring places keys on a set of rings.

The C++ ring must agree with every line of it. Run with Debian's Python (the one that has
python3-uhashring):   /usr/bin/python3 test/vectors/generate.py > test/vectors/ring_vectors.json

Deterministic: the same uhashring gives the same file.
"""
import json
from collections import Counter
import random
import string
import sys

import uhashring
from uhashring import HashRing

rng = random.Random(20261125)

UNICODE_POOL = (
    "abcxyzABC0189-_+/=. "
    "éüßøçñ"  # Latin-1 range
    "шардключ"  # Cyrillic
    "節点鍵短縮"  # CJK
    "🙂🚀🧪"  # astral plane (4-byte UTF-8)
    "\u0301\u200d\ufeff"  # combining accent, zero-width joiner, BOM
)


def ascii_key():
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(1, 12)))


def tutorial_id():
    # The tutorial's ids: 5 characters of standard base64, '+' and '/' included.
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(rng.choice(alphabet) for _ in range(5))


def unicode_key():
    return "".join(rng.choice(UNICODE_POOL) for _ in range(rng.randint(1, 16)))


def long_key():
    return "".join(rng.choice(UNICODE_POOL) for _ in range(rng.randint(200, 1200)))


def keys(count):
    fixed = ["", " ", "0OGWo", "a", "A", "-", "5432", "5432-0", "\t", "key with spaces"]
    makers = [ascii_key, tutorial_id, unicode_key] * 4 + [long_key]
    return fixed + [rng.choice(makers)() for _ in range(count - len(fixed))]


def node_name(i):
    kind = rng.randint(0, 3)
    if kind == 0:
        return str(5432 + i)
    if kind == 1:
        return f"shard-{i}"
    if kind == 2:
        return "".join(rng.choice(UNICODE_POOL.replace(" ", "")) for _ in range(rng.randint(1, 6))) + str(i)
    return f"db{i}.example-{rng.randint(0, 99)}"


def case(title, hash_name, nodes, ring_vnodes=None, key_count=200):
    """nodes: list of (name, weight or None, vnodes or None)."""
    conf = {}
    for name, weight, vnodes in nodes:
        entry = {}
        if weight is not None:
            entry["weight"] = weight
        if vnodes is not None:
            entry["vnodes"] = vnodes
        conf[name] = entry
    kwargs = {}
    if hash_name == "ketama":
        kwargs["hash_fn"] = "ketama"
    if ring_vnodes is not None:
        kwargs["vnodes"] = ring_vnodes
    ring = HashRing(nodes=conf, **kwargs)
    ks = keys(key_count)
    raw_points = ring.runtime._keys
    # Points written twice: the node written last owns them (uhashring keeps a dict).
    collisions = sorted(p for p, n in Counter(raw_points).items() if n > 1)
    out = {
        "title": title,
        "hash": hash_name,
        "nodes": [
            {k: v for k, v in (("name", n), ("weight", w), ("vnodes", v)) if v is not None}
            for n, w, v in nodes
        ],
        "point_count": len(set(raw_points)),
        "collisions": [{"position": str(p), "owner": ring.runtime._ring[p]} for p in collisions],
        "keys": ks,
        "owners": [ring.get_node(k) for k in ks],
        # uhashring's node dict for each owner, as the tutorial's JSON shows it.
        "servers": {name: ring.conf[name] for name, _, _ in nodes},
    }
    if ring_vnodes is not None:
        out["vnodes"] = ring_vnodes
    return out


def random_ring(hash_name, size):
    names = []
    while len(names) < size:
        n = node_name(len(names))
        if n not in names:
            names.append(n)
    nodes = []
    for n in names:
        weight = rng.choice([None, 1, 1, 2, 3, 5])
        vnodes = rng.choice([None, None, 1, 7, 40, 100, 250])
        nodes.append((n, weight, vnodes))
    ring_vnodes = rng.choice([None, None, 10, 64, 200])
    return case(f"random {hash_name} ring of {size}", hash_name, nodes, ring_vnodes)


def main():
    cases = [
        case("the tutorial's ring", "md5", [("5432", None, None), ("5433", None, None), ("5434", None, None)], key_count=600),
        case("tutorial names, ketama", "ketama", [("5432", None, None), ("5433", None, None), ("5434", None, None)]),
        case("one node", "md5", [("only", None, None)], key_count=50),
        case("one node, ketama", "ketama", [("only", None, None)], key_count=50),
        case("weights", "md5", [("a", 1, None), ("b", 3, None), ("c", 2, 20)]),
        case("ketama weights that round down to zero labels", "ketama", [("light", 1, 1), ("heavy", 1000, 1)]),
        # 12 nodes x 4000 labels x 4 words: enough 32-bit points that some collide.
        case("ketama collisions", "ketama", [(f"n{i}", None, None) for i in range(12)], ring_vnodes=4000, key_count=100),
    ]
    for size in range(1, 13):
        cases.append(random_ring("md5", size))
        cases.append(random_ring("ketama", size))
    json.dump({"generator": f"uhashring {uhashring.__file__}", "cases": cases}, sys.stdout,
              ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
