"""Adapters: the only modules that import drivers (redis, pymongo, PyMySQL, boto3)."""
