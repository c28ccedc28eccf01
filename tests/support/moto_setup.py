"""Prepares a fresh moto_server for wxcube's S3 tests and prints the credentials as JSON.

Usage: moto_setup.py <endpoint> <bucket>

moto is started with INITIAL_NO_AUTH_ACTION_COUNT=4, so it enforces IAM authentication after
these four calls: create the bucket, a user, that user's S3 policy, and its access key. Wrong
credentials are then refused as a real S3 would refuse them.
"""

import json
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
setup = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **setup).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **setup)
iam.create_user(UserName="wxcube")
iam.put_user_policy(
    UserName="wxcube",
    PolicyName="lake",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
)
key = iam.create_access_key(UserName="wxcube")["AccessKey"]
json.dump({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}, sys.stdout)
