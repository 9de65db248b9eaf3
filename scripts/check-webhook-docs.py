#!/usr/bin/env python3
"""Runs the signature-verifying snippets of docs/webhooks.md (Node and Python) on the test
vector the doc gives (which `src/webhooks/mod.rs` signs in a unit test), on a fresh
signature, and on tampered input, so the snippets users copy are known to work.

Run: python3 scripts/check-webhook-docs.py   (needs python3 and node)
"""
import hashlib
import hmac
import json
import pathlib
import re
import subprocess
import sys
import time

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs/webhooks.md"
SECRET = "whsec-test-0123456789"
BODY = ('{"id":"launch-1","type":"campaign.milestone","campaign":"launch","at":1764500000000,'
        '"data":{"metric":"like","threshold":100000,"value":100003}}')
VECTOR = "t=1764500000,v1=e64f8986d645d4268afcfa892bc1858a3d9e5902dd6b999b9cc8c126545673d8"
FOREVER = 10**10


def block(text, lang):
    found = re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)
    if len(found) != 1:
        sys.exit(f"docs/webhooks.md: expected one ```{lang} block, found {len(found)}")
    return found[0]


def main():
    text = DOC.read_text(encoding="utf-8")
    if VECTOR.split("v1=")[1] not in text or BODY not in text:
        sys.exit("docs/webhooks.md no longer shows the test vector this script checks")
    now = int(time.time())
    fresh = f"t={now},v1=" + hmac.new(SECRET.encode(), f"{now}.{BODY}".encode(), hashlib.sha256).hexdigest()
    # (header, body, tolerance, expected)
    cases = [
        (VECTOR, BODY, FOREVER, True),
        (VECTOR, BODY, 300, False),  # a year-old t is a replay
        (VECTOR, BODY.replace("100003", "100004"), FOREVER, False),
        (fresh, BODY, 300, True),
        (fresh.replace("v1=", "v1=00"), BODY, 300, False),
        ("t=abc,v1=00", BODY, FOREVER, False),
        ("", BODY, FOREVER, False),
    ]
    ns = {}
    exec(block(text, "python"), ns)
    py = [ns["verify_livetally"](SECRET, h, b.encode(), tol) for h, b, tol, _ in cases]
    js_src = block(text, "js") + (
        "\nconst cases = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(cases.map(([h, b, tol]) => verifyLivetally(%s, h, Buffer.from(b), tol))));\n"
        % json.dumps(SECRET)
    )
    out = subprocess.run(
        ["node", "-e", js_src, json.dumps([[h, b, tol] for h, b, tol, _ in cases])],
        capture_output=True, text=True, check=True,
    )
    js = json.loads(out.stdout)
    want = [e for *_, e in cases]
    ok = True
    for name, got in (("python", py), ("node", js)):
        if got != want:
            ok = False
            print(f"{name} snippet: got {got}, want {want}")
    if not ok:
        sys.exit(1)
    print(f"docs/webhooks.md: the Node and Python snippets verify {len(cases)} cases as expected")


if __name__ == "__main__":
    main()
