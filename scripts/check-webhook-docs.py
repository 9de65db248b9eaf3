#!/usr/bin/env python3
"""Runs every code snippet of docs/webhooks.md, so what users copy is known to work:

- webhook verification in Node and Python with the `standardwebhooks` library (installed
  from npm and PyPI into scripts/webhook-docs/, pinned there), in Go (standard library)
  and PHP (hash_hmac), and the `Livetally-Signature` checks in Node and Python;
- join-token minting in Go and PHP.

A real node (target/debug/livetally, built when missing; LIVETALLY_BIN overrides) is
started with a `whsec_` webhook secret and a join secret. The Go and PHP snippets mint
tokens for a token-only campaign; each token is spent on a registration (201 for the
token's `sub`, 403 for a forged one), and each registration makes the node send a signed
`registration.created` to a receiver here. Every verifier then checks those requests, the
doc's test vectors, requests signed here with a plain secret, and tampered copies
(altered body, signature, id, a stale timestamp, a missing header).

Go and PHP come from Debian (`bash scripts/install-test-deps.sh`); where one cannot be
found the script says so and skips that language, nothing else.

Run: python3 scripts/check-webhook-docs.py
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs/webhooks.md"
DEPS = ROOT / "scripts/webhook-docs"
BODY = ('{"id":"launch-1","type":"campaign.milestone","campaign":"launch","at":1764500000000,'
        '"data":{"metric":"like","threshold":100000,"value":100003}}')
WHSEC = "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
PLAIN = "whsec-test-0123456789"
VECTOR_T = 1764500000
VECTORS = {  # secret -> webhook-signature of BODY with id launch-1 at VECTOR_T
    WHSEC: "v1,BzPNdvQfZqqZp9a5w5SVhdk4Es6KMFQ3nlPGS1r24GM=",
    PLAIN: "v1,EYhskeJtGEnFs6JBrdhKbZfHmqcBCHRgttHE/xYS65Y=",
}
LEGACY_VECTOR = "t=1764500000,v1=e64f8986d645d4268afcfa892bc1858a3d9e5902dd6b999b9cc8c126545673d8"
JOIN_SECRET = "docs-join-secret-0123456789abcdef"
OPERATOR = "docs-operator-token-0123456789"
FOREVER = 10**9  # 31 years: still fits a Go time.Duration
WANTED = [("js", "standardwebhooks"), ("python", "standardwebhooks"), ("go", "verify"),
          ("php", "verify"), ("js", "livetally-signature"), ("python", "livetally-signature"),
          ("go", "mint"), ("php", "mint")]


def snippets(text):
    found = {}
    for lang, name, code in re.findall(r"```(\w+) ([\w-]+)\n(.*?)```", text, flags=re.S):
        if (lang, name) in found:
            sys.exit(f"docs/webhooks.md: two ```{lang} {name} blocks")
        found[(lang, name)] = code
    missing = [f"```{lang} {name}" for lang, name in WANTED if (lang, name) not in found]
    if missing:
        sys.exit(f"docs/webhooks.md: no {', '.join(missing)} block (this script runs them)")
    return found


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def install_deps():
    """The pinned `standardwebhooks` packages: npm from the lock file, PyPI into a venv."""
    if not (DEPS / "node_modules/standardwebhooks").is_dir():
        run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=DEPS)
    python = DEPS / ".venv/bin/python"
    if not python.exists() or subprocess.run([str(python), "-c", "import standardwebhooks"],
                                             capture_output=True).returncode != 0:
        run([sys.executable, "-m", "venv", "--clear", str(DEPS / ".venv")])
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(DEPS / "requirements.txt")])
    return python


# --- signing here, independently of the node --------------------------------------------

def standard_key(secret):
    return base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()


def standard_sign(secret, msg_id, t, body):
    mac = hmac.new(standard_key(secret), f"{msg_id}.{t}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def legacy_sign(secret, t, body):
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()


def signed(secret, msg_id, t, body):
    return {"webhook-id": msg_id, "webhook-timestamp": str(t),
            "webhook-signature": standard_sign(secret, msg_id, t, body),
            "Livetally-Signature": legacy_sign(secret, t, body)}


# --- a node, a receiver, and the tokens -------------------------------------------------

class Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        Receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=OPERATOR):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body or {}).encode(),
                                 headers={"content-type": "application/json",
                                          "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def await_true(what, check, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def start_node():
    binary = os.environ.get("LIVETALLY_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--quiet", "--locked", "--bin", "livetally"], cwd=ROOT, check=True)
        binary = str(ROOT / "target/debug/livetally")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    node = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--operator-token", OPERATOR,
         "--join-secret", JOIN_SECRET, "--webhook-url", f"http://127.0.0.1:{server.server_port}/hooks",
         "--webhook-secret", WHSEC, "--webhook-poll", "50ms"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "warn"})
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(base + "/healthz", timeout=1).status == 200
        except OSError:
            return node.poll() is not None and sys.exit(f"the node exited: {node.stderr.read()}")
    await_true("the node to listen", up)
    status, body = call(base, "POST", "/api/v1/campaigns", {"id": "docs", "title": "Docs", "access": "token"})
    if status != 201:
        sys.exit(f"creating the campaign: {status} {body}")
    return node, base


def register(base, token):
    return call(base, "POST", f"/api/v1/campaigns/docs/registrations?token={token}", token="")


# --- the languages ----------------------------------------------------------------------

def go_program(code, workdir):
    """The Go snippets in package main, with a main that mints or verifies."""
    if not shutil.which("go"):
        return None
    d = pathlib.Path(workdir, "go")
    d.mkdir()
    for name in ("verify", "mint"):
        (d / f"{name}.go").write_text("package main\n\n" + code[("go", name)])
    (d / "main.go").write_text("""package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

type verifyCase struct {
	Secret    string            `json:"secret"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"`
	Tolerance int64             `json:"tolerance_s"`
}

func main() {
	if os.Args[1] == "mint" {
		token, err := MintJoinToken([]byte(os.Args[2]), os.Args[3], os.Args[4], time.Hour)
		if err != nil {
			panic(err)
		}
		fmt.Print(token)
		return
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	var cases []verifyCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	out := []bool{}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		out = append(out, VerifyLivetallyWebhook(c.Secret, h, []byte(c.Body), time.Duration(c.Tolerance)*time.Second))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
""")
    run(["go", "build", "-o", str(d / "docs"), "main.go", "verify.go", "mint.go"], cwd=d,
        env={**os.environ, "GO111MODULE": "off", "GOCACHE": str(ROOT / "target/go-cache")})
    return [str(d / "docs")]


def php_program(code, workdir):
    if not shutil.which("php"):
        return None
    d = pathlib.Path(workdir, "php")
    d.mkdir()
    (d / "snippets.php").write_text("<?php\n" + code[("php", "verify")] + "\n" + code[("php", "mint")])
    (d / "main.php").write_text("""<?php
declare(strict_types=1);
require __DIR__ . '/snippets.php';
if ($argv[1] === 'mint') {
    echo mint_join_token($argv[2], $argv[3], $argv[4], 3600);
    exit(0);
}
$out = [];
foreach (json_decode(file_get_contents($argv[2]), true) as $c) {
    $out[] = verify_livetally_webhook($c['secret'], $c['headers'], $c['body'], $c['tolerance_s']);
}
echo json_encode($out);
""")
    return ["php", str(d / "main.php")]


NODE_LIB = """
const cases = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
console.log(JSON.stringify(cases.map((c) => {
  try { livetallyWebhook(c.secret).verify(c.body, c.headers); return true; } catch (e) { return false; }
})));
"""
PY_LIB = """
import json, sys
from standardwebhooks.webhooks import WebhookVerificationError
out = []
for c in json.load(open(sys.argv[1])):
    try:
        livetally_webhook(c["secret"]).verify(c["body"].encode(), c["headers"])
        out.append(True)
    except WebhookVerificationError:
        out.append(False)
print(json.dumps(out))
"""
NODE_LEGACY = """
const cases = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
console.log(JSON.stringify(cases.map((c) =>
  verifyLivetally(c.secret, c.headers["Livetally-Signature"] || "", Buffer.from(c.body), c.tolerance_s))));
"""
PY_LEGACY = """
import json, sys
print(json.dumps([verify_livetally(c["secret"], c["headers"].get("Livetally-Signature", ""), c["body"].encode(),
                                   c["tolerance_s"]) for c in json.load(open(sys.argv[1]))]))
"""


def tampered(secret, headers, body):
    """(case, expected) pairs for the Standard Webhooks verifiers from one genuine request."""
    h = {k: v for k, v in headers.items() if k.lower() != "livetally-signature"}
    msg_id, t = h["webhook-id"], int(h["webhook-timestamp"])
    case = lambda hh, b=body, s=secret, tol=300: {"secret": s, "headers": hh, "body": b, "tolerance_s": tol}
    sig = h["webhook-signature"]
    stale = t - 3600
    return [
        (case(h), True),
        (case({**h, "webhook-signature": "v1,bm90IGl0 " + sig}), True),  # one of several matches
        (case(h, b=body.replace('"', "'", 1)), False),
        (case({**h, "webhook-signature": sig[:-6] + "AAAAA="}), False),
        (case({**h, "webhook-id": msg_id + "0"}), False),
        (case(h, s=PLAIN if secret != PLAIN else WHSEC), False),
        (case({**h, "webhook-timestamp": str(stale),
               "webhook-signature": standard_sign(secret, msg_id, stale, body)}), False),
        (case({k: v for k, v in h.items() if k != "webhook-signature"}), False),
    ]


def main():
    code = snippets(DOC.read_text(encoding="utf-8"))
    doc = DOC.read_text(encoding="utf-8")
    for needle in [BODY, LEGACY_VECTOR, *VECTORS, *VECTORS.values()]:
        if needle not in doc:
            sys.exit(f"docs/webhooks.md no longer shows {needle!r}, which this script checks")
    python = install_deps()
    skipped = []
    node, base = start_node()
    try:
        with tempfile.TemporaryDirectory() as work:
            go = go_program(code, work)
            php = php_program(code, work)
            minted = 0
            for lang, program in (("go", go), ("php", php)):
                if program is None:
                    skipped.append(lang)
                    continue
                token = run(program + ["mint", JOIN_SECRET, "docs", f"{lang}-viewer"]).stdout
                status, body = register(base, token)
                if status != 201 or body.get("viewer") != f"{lang}-viewer":
                    sys.exit(f"the node refused the {lang} snippet's token: {status} {body}")
                forged = run(program + ["mint", JOIN_SECRET + "x", "docs", f"{lang}-forger"]).stdout
                if register(base, forged)[0] != 403:
                    sys.exit(f"a {lang} token signed with another secret was not refused")
                minted += 1
            if minted == 0:
                # Still a real signed request when neither Go nor PHP is here.
                status, body = call(base, "POST", "/api/v1/campaigns", {"id": "open", "title": "Open"})
                status, body = call(base, "POST", "/api/v1/campaigns/open/registrations", {"viewer": "v-1"}, token="")
                minted = 1
            await_true(f"{minted} signed webhook requests", lambda: len(Receiver.got) >= minted)
            cases = []
            for headers, body in Receiver.got:
                genuine = {k: headers[k.lower()] for k in ("webhook-id", "webhook-timestamp", "webhook-signature",
                                                           "Livetally-Signature")}
                cases += tampered(WHSEC, genuine, body)
            now = int(time.time())
            cases += tampered(PLAIN, signed(PLAIN, "launch-1", now, BODY), BODY)
            standard = [c for c, _ in cases]
            want = [e for _, e in cases]
            vector = [({"secret": s, "body": BODY, "tolerance_s": FOREVER,
                        "headers": {"webhook-id": "launch-1", "webhook-timestamp": str(VECTOR_T),
                                    "webhook-signature": sig}}, True) for s, sig in VECTORS.items()]
            legacy = [
                ({"secret": PLAIN, "headers": {"Livetally-Signature": LEGACY_VECTOR}, "body": BODY,
                  "tolerance_s": FOREVER}, True),
                ({"secret": PLAIN, "headers": {"Livetally-Signature": LEGACY_VECTOR}, "body": BODY,
                  "tolerance_s": 300}, False),  # a year-old t is a replay
                ({"secret": PLAIN, "headers": {"Livetally-Signature": "t=abc,v1=00"}, "body": BODY,
                  "tolerance_s": FOREVER}, False),
            ]
            for headers, body in Receiver.got:
                legacy.append(({"secret": WHSEC, "headers": {"Livetally-Signature": headers["livetally-signature"]},
                                "body": body, "tolerance_s": 300}, True))
                legacy.append(({"secret": WHSEC, "headers": {"Livetally-Signature": headers["livetally-signature"]},
                                "body": body + " ", "tolerance_s": 300}, False))
            failures = check_all(code, python, go, php, work, standard, want, vector, legacy)
    finally:
        node.terminate()
        node.wait(timeout=10)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    for lang in skipped:
        print(f"NOTE: {lang} is not installed (bash scripts/install-test-deps.sh installs it): "
              f"its snippets were not run")
    print(f"docs/webhooks.md: every snippet verified {len(standard)} requests ({len(Receiver.got)} signed by a "
          f"node, tampered copies included) and {len(vector)} test vectors as expected; "
          f"{len(legacy)} Livetally-Signature cases; the node admitted the "
          f"{' and '.join(x for x in ('go', 'php') if x not in skipped) or 'no'} minted tokens")


def check_all(code, python, go, php, work, standard, want, vector, legacy):
    path = pathlib.Path(work)

    def dump(name, cases):
        f = path / f"{name}.json"
        f.write_text(json.dumps(cases))
        return str(f)

    all_standard = dump("standard", standard + [c for c, _ in vector])
    all_want = want + [e for _, e in vector]
    only_live = dump("live", standard)
    legacy_file = dump("legacy", [c for c, _ in legacy])
    node_env = {**os.environ, "NODE_PATH": str(DEPS / "node_modules")}
    runs = [
        # The libraries enforce their own 5-minute window, so the old vectors are not theirs.
        ("node standardwebhooks", ["node", "-e", code[("js", "standardwebhooks")] + NODE_LIB, only_live], want, node_env),
        ("python standardwebhooks", [str(python), "-c", code[("python", "standardwebhooks")] + PY_LIB, only_live],
         want, None),
        ("node Livetally-Signature", ["node", "-e", code[("js", "livetally-signature")] + NODE_LEGACY, legacy_file],
         [e for _, e in legacy], None),
        ("python Livetally-Signature", [sys.executable, "-c", code[("python", "livetally-signature")] + PY_LEGACY,
                                        legacy_file], [e for _, e in legacy], None),
    ]
    if go:
        runs.append(("go", go + ["verify", all_standard], all_want, None))
    if php:
        runs.append(("php", php + ["verify", all_standard], all_want, None))
    failures = []
    for name, cmd, expected, env in runs:
        got = json.loads(run(cmd, env=env).stdout)
        if got != expected:
            failures.append(f"{name} snippet: got {got}, want {expected}")
    return failures


if __name__ == "__main__":
    main()
