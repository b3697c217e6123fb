"""The file store under /dav/file and the WebDAV locks of every /dav tree.

`FileNode` is one file or folder of an account's file home. Its `path` is the resource path
below the home ("Documents/report.pdf"), unique per account, so a URL is resolved with one
indexed query; `parent` keeps the tree for Depth 1 listings and cascading deletes. A file's
bytes are a blob of the blob store (`blob_id`, the account's id for that content; the node
holds it under `owner_kind="davfile"`, so the account's disk quota covers files and mail
alike).

`Lock` is one WebDAV write lock (RFC 4918 §6) on a URL of one account's tree, kept in the
database so that every worker and node sees it.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

MAX_PATH = 1024
MAX_NAME = 255


class FileNode(models.Model):
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    path = models.CharField(max_length=MAX_PATH)
    name = models.CharField(max_length=MAX_NAME)
    is_collection = models.BooleanField(default=False)
    blob_id = models.CharField(max_length=64, blank=True, default="")
    size = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=255, blank=True, default="")
    etag = models.CharField(max_length=80)
    # Dead properties: "{namespace}name" -> the element, serialised as sent.
    dead_props = models.JSONField(default=dict, blank=True)
    # Grants to other principals (RFC 3744 subset): [{"principal": account id, "rights": [...]}].
    acl = models.JSONField(default=list, blank=True)
    # Whether `acl` grants anything: the index that finds the homes shared with a caller.
    shared = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField()
    modified_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "path"], name="dav_filenode_account_path")]
        indexes = [models.Index(fields=["parent", "name"], name="dav_filenode_parent_name")]

    def __str__(self):
        return f"{self.account_id}:{self.path}"


class Lock(models.Model):
    class Scope(models.TextChoices):
        EXCLUSIVE = "exclusive"
        SHARED = "shared"

    token = models.CharField(max_length=80, unique=True)
    # The tree the lock is in: the service ("file", "cal", "card") and the account owning it.
    service = models.CharField(max_length=8)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The resource path below the account's home ("" is the home itself).
    path = models.CharField(max_length=MAX_PATH)
    infinite = models.BooleanField(default=False)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    owner_xml = models.TextField(blank=True, default="")
    # Who took it: only that principal may use its token.
    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    timeout = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["service", "account", "path"], name="dav_lock_resource")]

    def __str__(self):
        return self.token
