#!/usr/bin/env python3
"""Writes a seed-sized organisation for `PUT /api/v1/orgs/{org}`: by default 546,000 units
over six levels (1 national office, 31 provinces, 340 cities, 2,900 counties, 33,000
townships, the rest villages), Chinese names, parents always on an earlier line, as CSV
(header code,parent,name) or NDJSON. Deterministic (fixed seed), so runs compare.

Usage: python3 scripts/gen-org.py [--units N] [--ndjson] > org.csv
"""
import argparse
import json
import random
import sys

# Units per level above the villages, as the seed's organisation has them.
UPPER = [1, 31, 340, 2900, 33000]
SUFFIX = ["总部", "省", "市", "县", "镇", "村"]
# Common characters of Chinese place names.
CHARS = "东南西北中华安平和兴福宁德阳山河湖海江川林泉新长永广金龙凤云峰石桥口岭田丰茂盛庆昌明光"


def levels(total):
    counts = []
    left = total
    for n in UPPER:
        n = min(n, left)
        counts.append(n)
        left -= n
    counts.append(left)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=546_000)
    ap.add_argument("--ndjson", action="store_true")
    args = ap.parse_args()
    rng = random.Random(20)
    out = sys.stdout
    if not args.ndjson:
        out.write("code,parent,name\n")
    serial = 0
    above = []
    for level, count in enumerate(levels(args.units)):
        here = []
        for i in range(count):
            serial += 1
            # 12-digit codes, as administrative division codes are.
            code = f"{110000000000 + serial}"
            parent = above[i % len(above)] if above else ""
            name = "".join(rng.choice(CHARS) for _ in range(rng.randint(2, 4))) + SUFFIX[level]
            if args.ndjson:
                out.write(json.dumps({"code": code, "parent": parent, "name": name}, ensure_ascii=False) + "\n")
            else:
                out.write(f"{code},{parent},{name}\n")
            here.append(code)
        if here:
            above = here
    return 0


if __name__ == "__main__":
    sys.exit(main())
