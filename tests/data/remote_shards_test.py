#!/usr/bin/env python3
"""http:// and s3:// shards against real servers on 127.0.0.1: the bytes read through TarReader (shard_cat) equal
Python's tarfile reading of the same files, through lost connections, 503 bursts, stalls, slow servers, a server
that ignores Range and a server killed mid-shard; errors that cannot be retried (404, a bad signature) stop at
once with the server's reason; S3 through moto's server with signatures checked; the loader reads URL patterns
(siglip2 data inspect, siglip2 data bench) and counts a missing shard as unreadable_shard.

    remote_shards_test.py --shard-cat build/tests/data/shard_cat --workdir DIR   (SIGLIP2_BIN: the siglip2 command)
"""
import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def fnv(data):
    h = 14695981039346656037
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def listing(path):
    """What shard_cat prints for a shard, from Python's tarfile (TarInfo.offset: where its header starts)."""
    lines = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if m.isfile():
                data = tar.extractfile(m).read()
                lines.append(f"{m.offset} {m.name} {m.size} {fnv(data):016x}")
    return lines


def make_shards(root, count, samples, seed=0):
    """Shards of JPEGs and captions, each with one large entry (300 kB) so that faults land inside an entry."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for s in range(count):
        with tarfile.open(os.path.join(root, f"{s:06d}.tar"), "w") as tar:
            for i in range(samples):
                key = f"{s:06d}_{i:04d}"
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buf, format="JPEG")
                files = [("jpg", buf.getvalue()), ("txt", f"sample {i} of shard {s}".encode())]
                if i == samples // 2:
                    files.append(("bin", rng.bytes(300_000)))
                for ext, data in files:
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


class Server:
    def __init__(self, root, log, faults=(), port=0):
        args = [sys.executable, os.path.join(HERE, "shard_server.py"), root, "--port", str(port), "--log", log]
        for f in faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.log = log

    def requests(self):
        if not os.path.exists(self.log):
            return []
        return [json.loads(line) for line in open(self.log)]

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)


def shard_cat(tool, urls, *flags, env=None, timeout=120):
    r = subprocess.run([tool, *flags, *urls], capture_output=True, text=True, timeout=timeout, env=env)
    lines = r.stdout.splitlines()
    resumes = [int(line.split()[1]) for line in lines if line.startswith("resumes ")]
    return r.returncode, [line for line in lines if not line.startswith("resumes ")], resumes, r.stderr.strip()


def http_cases(tool, bin_, work):
    data = os.path.join(work, "shards")
    make_shards(data, 9, 30)
    want = {s: listing(os.path.join(data, f"{s:06d}.tar")) for s in range(9)}
    shutil.copy(os.path.join(data, "000000.tar"), os.path.join(data, "hang.tar"))
    size = os.path.getsize(os.path.join(data, "000001.tar"))
    mid = size // 2 + 1234  # inside the large entry
    fast = ["--retry-delay-ms", "100"]

    def fresh_log(name):
        path = os.path.join(work, name + ".jsonl")
        if os.path.exists(path):
            os.remove(path)
        return path

    srv = Server(data, fresh_log("plain"), faults=[
        f"000001.tar=drop@{mid}",
        f"000002.tar=drop@{mid}", "000002.tar=norange",
        "000003.tar=503x3",
        "000004.tar=503x20",
        f"000005.tar=stall@{mid}:8",
        "000006.tar=slow:400000",
        f"000007.tar=drop@{mid}", "000007.tar=newetag",
        "000008.tar=503barex2",
        "hang.tar=stallevery@1000:30",
    ])
    base = f"http://127.0.0.1:{srv.port}/"
    try:
        rc, got, resumes, err = shard_cat(tool, [base + "000000.tar"], *fast)
        check(rc == 0 and got == want[0] and resumes == [0],
              f"http: {len(got)} entries equal Python's tarfile reading of the file, no resume ({err})")

        rc, got, resumes, err = shard_cat(tool, [base + "000001.tar"], *fast)
        ranges = [r["range"] for r in srv.requests() if r["path"] == "000001.tar"]
        check(rc == 0 and got == want[1] and resumes == [1] and ranges == [None, f"bytes={mid}-"],
              f"connection closed after {mid} of {size} bytes: resumed with 'Range: bytes={mid}-', the same entries "
              f"(requests {ranges}; {err})")

        rc, got, resumes, err = shard_cat(tool, [base + "000002.tar"], *fast)
        statuses = [r["status"] for r in srv.requests() if r["path"] == "000002.tar"]
        check(rc == 0 and got == want[2] and statuses == [200, 200],
              f"a server that ignores Range answers the resume with the whole file: the first {mid} bytes are "
              f"dropped, the same entries ({err})")

        rc, got, resumes, err = shard_cat(tool, [base + "000003.tar"], *fast)
        check(rc == 0 and got == want[3] and resumes == [3],
              f"three 503 answers, then the shard: read after 3 retries ({err})")

        t0 = time.time()
        rc, got, resumes, err = shard_cat(tool, [base + "000004.tar"], "--retries", "2", *fast)
        n = len([r for r in srv.requests() if r["path"] == "000004.tar"])
        check(rc == 1 and "000004.tar: HTTP 503 (gave up after 3 failed requests in a row)" in err and n == 3,
              f"a 503 that does not end: given up after 1 + 2 retries ({n} requests, {time.time() - t0:.1f} s): {err}")

        rc, got, resumes, err = shard_cat(tool, [base + "missing.tar"], *fast)
        n = len([r for r in srv.requests() if r["path"] == "missing.tar"])
        check(rc == 1 and err.endswith("missing.tar: HTTP 404 (NoSuchKey)") and n == 1,
              f"404 is not retried and names the server's reason ({n} request): {err}")

        t0 = time.time()
        rc, got, resumes, err = shard_cat(tool, [base + "000005.tar"], "--read-timeout-s", "1", *fast)
        took = time.time() - t0
        ranges = [r["range"] for r in srv.requests() if r["path"] == "000005.tar"]
        check(rc == 0 and got == want[5] and resumes == [1] and f"bytes={mid}-" in ranges and took < 4,
              f"a server that stops sending for 8 s mid-shard: dropped after the 1 s read timeout and resumed at "
              f"byte {mid} ({took:.1f} s; {err})")

        t0 = time.time()
        rc, got, resumes, err = shard_cat(tool, [base + "000006.tar"], "--read-timeout-s", "1", *fast)
        took = time.time() - t0
        check(rc == 0 and got == want[6] and resumes == [0] and took > 0.8 * size / 400000,
              f"a slow server (400 kB/s, {size} bytes in {took:.1f} s) is not a stalled one: no resume ({err})")

        rc, got, resumes, err = shard_cat(tool, [base + "000007.tar"], *fast)
        check(rc == 1 and "HTTP 412: the object changed while it was read (If-Match" in err,
              f"an object replaced between the first request and the resume: the resume asks for the same version "
              f"(If-Match) and stops with 412, never joining two versions: {err}")

        # Starting at an entry's header (a resumed loader's saved offset): a URL is asked for that byte on, a
        # file is positioned there, a command's output is read and the entries before it are skipped.
        k = len(want[0]) * 2 // 3
        at = int(want[0][k].split()[0])
        rc, got, resumes, err = shard_cat(tool, [base + "000000.tar"], "--offset", str(at), "--seek", "1", *fast)
        ranges = [r["range"] for r in srv.requests() if r["path"] == "000000.tar"]
        check(rc == 0 and got == want[0][k:] and ranges[-1] == f"bytes={at}-",
              f"http, from the header at byte {at}: one request 'Range: bytes={at}-', entries {k}.. ({err})")
        for how, shard, flags in (("file, positioned", os.path.join(data, "000000.tar"), ["--seek", "1"]),
                                  ("pipe, read and skipped", "pipe:cat " + os.path.join(data, "000000.tar"), [])):
            rc, got, resumes, err = shard_cat(tool, [shard], "--offset", str(at), *flags)
            check(rc == 0 and got == want[0][k:], f"{how} from byte {at}: entries {k}.. ({err})")

        rc, got, resumes, err = shard_cat(tool, [base + "000008.tar"], *fast)
        check(rc == 0 and got == want[8] and resumes == [2],
              f"two 503 answers without a body: retried as errors, not read as an empty shard ({err})")

        # The loader's view: URL patterns, a missing shard skipped and counted.
        r = subprocess.run([bin_, "data", "inspect", base + "{000000..000003}.tar", base + "000009.tar"],
                           capture_output=True, text=True, timeout=300)
        out = r.stdout
        samples = int(next(line.split()[1] for line in out.splitlines() if line.startswith("samples")))
        check(r.returncode == 0 and samples == 4 * 30 and "unreadable_shard   1" in out and
              "000009.tar: HTTP 404 (NoSuchKey)" in r.stderr,
              f"siglip2 data inspect on http:// patterns: {samples} samples, the missing shard counted "
              f"as unreadable_shard and its reason logged ({r.stderr.strip().splitlines()[-1:]})")

        # A server that accepts and never answers: --read-timeout-s and --retries bound the wait.
        t0 = time.time()
        r = subprocess.run([bin_, "data", "inspect", base + "hang.tar", "--read-timeout-s", "1", "--retries", "0"],
                           capture_output=True, text=True, timeout=300)
        took = time.time() - t0
        check(r.returncode == 1 and "no byte received for 1 s" in r.stderr and "no sample could be read" in r.stderr
              and took < 20,
              f"inspect with --read-timeout-s 1 --retries 0 on a stalling server gives up in {took:.1f} s "
              f"({r.stderr.strip().splitlines()[-1:]})")
    finally:
        srv.stop()

    # A server killed mid-shard (SIGKILL while it stalls) and started again on the same port: the transfer
    # resumes from the byte reached once the server is back.
    log_a = fresh_log("killed")
    srv = Server(data, log_a, faults=[f"000001.tar=stall@{mid}:60"])
    port = srv.port
    proc = subprocess.Popen([tool, "--retry-delay-ms", "300", "--retries", "6", f"http://127.0.0.1:{port}/000001.tar"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    srv.stop(signal.SIGKILL)
    time.sleep(0.5)
    log_b = fresh_log("restarted")
    srv = Server(data, log_b, port=port)
    try:
        out, err = proc.communicate(timeout=60)
        got = [line for line in out.splitlines() if not line.startswith("resumes ")]
        ranges = [r["range"] for r in srv.requests()]
        check(proc.returncode == 0 and got == want[1] and ranges and ranges[-1] == f"bytes={mid}-",
              f"server killed at byte {mid} and restarted: resumed there, the same entries (requests to the new "
              f"server: {ranges}; {err.strip()})")
    finally:
        srv.stop()

    # Throughput through the loader: the same shards over HTTP and from files (printed, not asserted: the
    # benchmark is `siglip2 data bench`, see docs/data.md).
    srv = Server(data, fresh_log("bench"))
    try:
        for name, pattern in (("files", os.path.join(data, "{000000..000005}.tar")),
                              ("http", f"http://127.0.0.1:{srv.port}/{{000000..000005}}.tar")):
            r = subprocess.run([bin_, "data", "bench", pattern, "--threads", "2", "--images", "128",
                                "--batch-size", "16", "--image-size", "64", "--patch-size", "16",
                                "--shuffle-buffer", "10"], capture_output=True, text=True, timeout=300)
            check(r.returncode == 0, f"siglip2 data bench from {name}: {r.stdout.strip().splitlines()[-3:]} "
                                     f"{r.stderr.strip().splitlines()[-1:]}")
    finally:
        srv.stop()
    return data, want


def s3_cases(tool, bin_, work, data, want):
    # moto's S3 with IAM checks on: the first three requests (user, key, policy) are let through unsigned, every
    # later one must carry a valid Signature Version 4.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://127.0.0.1:%d" % server._server.server_port
    try:
        anon = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        iam = boto3.client("iam", **anon)
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        iam.put_user_policy(UserName="trainer", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        creds = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
        s3.create_bucket(Bucket="shards")
        # A key with a space (percent-encoded in the request and its signature). moto 5.2 rejects even
        # botocore's own signatures for keys with '+', '=', ',' or non-ASCII, so those are not tried here.
        names = {0: "webli/000000.tar", 1: "webli/000001.tar", 2: "odd keys/a b~c.tar"}
        for s, name in names.items():
            s3.upload_file(os.path.join(data, f"{s:06d}.tar"), "shards", name)

        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
                   AWS_ACCESS_KEY_ID=creds["aws_access_key_id"], AWS_SECRET_ACCESS_KEY=creds["aws_secret_access_key"])
        env.pop("AWS_SESSION_TOKEN", None)
        for s, name in names.items():
            rc, got, resumes, err = shard_cat(tool, [f"s3://shards/{name}"], env=env)
            check(rc == 0 and got == want[s], f"s3://shards/{name} through moto, signed: the same entries ({err})")

        bad = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
        rc, got, resumes, err = shard_cat(tool, ["s3://shards/webli/000000.tar"], env=bad)
        check(rc == 1 and "HTTP 403 (SignatureDoesNotMatch)" in err,
              f"a wrong secret: refused with the store's reason, not retried: {err}")

        anonymous = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        rc, got, resumes, err = shard_cat(tool, ["s3://shards/webli/000000.tar"], env=anonymous)
        check(rc == 1 and "HTTP 403" in err and "an unsigned request: AWS_ACCESS_KEY_ID" in err,
              f"no credentials: the refusal says the request was unsigned: {err}")

        rc, got, resumes, err = shard_cat(tool, ["s3://shards/webli/000009.tar"], env=env)
        check(rc == 1 and "HTTP 404 (NoSuchKey)" in err, f"a missing key: {err}")

        r = subprocess.run([bin_, "data", "inspect", "s3://shards/webli/{000000..000001}.tar"], capture_output=True,
                           text=True, timeout=300, env=env)
        samples = [line for line in r.stdout.splitlines() if line.startswith("samples")]
        check(r.returncode == 0 and samples == ["samples         60"],
              f"siglip2 data inspect on an s3:// pattern: {samples} {r.stderr.strip().splitlines()[-1:]}")
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shard-cat", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    bin_ = os.environ.get("SIGLIP2_BIN", "build/siglip2")
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    data, want = http_cases(a.shard_cat, bin_, a.workdir)
    s3_cases(a.shard_cat, bin_, a.workdir, data, want)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
