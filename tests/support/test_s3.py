"""The S3 fixture itself: moto's server speaks S3 to boto3, through the handle's client and through env alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import requests

from .s3 import ensure_s3_available, running_s3

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(tmp_path):
    reason = ensure_s3_available()
    if reason:
        pytest.skip(reason)
    with running_s3(tmp_path / "s3") as handle:
        yield handle


def test_bucket_put_and_get_round_trip(s3):
    client = s3.client()
    client.create_bucket(Bucket="backups")
    body = os.urandom(256 * 1024)
    put = client.put_object(Bucket="backups", Key="db/2024-01-01.dump", Body=body)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = client.get_object(Bucket="backups", Key="db/2024-01-01.dump")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324 - S3's ETag is an MD5
    listed = client.list_objects_v2(Bucket="backups", Prefix="db/")
    assert [item["Key"] for item in listed["Contents"]] == ["db/2024-01-01.dump"]


def test_a_client_configured_by_env_alone_reaches_it(s3):
    s3.client().create_bucket(Bucket="from-env")
    code = ("import boto3; c = boto3.client('s3'); c.put_object(Bucket='from-env', Key='k', Body=b'v'); "
            "print(c.get_object(Bucket='from-env', Key='k')['Body'].read().decode(), "
            "[b['Name'] for b in c.list_buckets()['Buckets']])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-c", code], env={**env, **s3.env()}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "v ['from-env']"


def test_reset_empties_the_server(s3):
    client = s3.client()
    client.create_bucket(Bucket="gone-soon")
    s3.reset()
    assert client.list_buckets()["Buckets"] == []


def test_server_is_gone_after_the_block(tmp_path):
    reason = ensure_s3_available()
    if reason:
        pytest.skip(reason)
    with running_s3(tmp_path) as handle:
        assert requests.get(handle.endpoint_url + "/moto-api/data.json", timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        requests.get(handle.endpoint_url + "/", timeout=2)
