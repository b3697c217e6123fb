"""The mail store's rows: mailboxes, emails (the raw message is a blob; the metadata parsed once
at import beside it), threads, and the two join tables the hot queries walk.

The hot query is "the newest 50 of a mailbox, maybe with or without a keyword": `Membership`
carries `received_at` and the email id, so an index on (mailbox, received_at, email) is walked
in order and stopped after 50 rows; a keyword condition is an EXISTS probe of `Keyword`'s
unique (email, keyword) index per row walked, never a scan of the mailbox.
"""
from django.conf import settings
from django.db import models


class Thread(models.Model):
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")


class ThreadKey(models.Model):
    """A threading key (a message id of RFC 5322 Message-ID/In-Reply-To/References, with the base
    subject) and the thread it leads to: a message joins the thread of any key it shares."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # SHA-1 of key and subject: message ids are unbounded in length, an index column is not.
    digest = models.CharField(max_length=40)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="keys")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "digest"], name="mail_thread_key_unique")]


class Mailbox(models.Model):
    ROLES = ("inbox", "drafts", "sent", "trash", "junk", "archive", "important", "all", "flagged",
             "subscribed", "scheduled", "snoozed", "memos")

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children")
    role = models.CharField(max_length=32, null=True, blank=True)
    sort_order = models.PositiveIntegerField(default=0)
    is_subscribed = models.BooleanField(default=True)
    # RFC 8621 §2's counts, kept by the store in the transaction of every write that moves them
    # (store.counting): Mailbox/get reads them instead of counting a mailbox per request.
    total_emails = models.PositiveIntegerField(default=0)
    unread_emails = models.PositiveIntegerField(default=0)
    total_threads = models.PositiveIntegerField(default=0)
    unread_threads = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "role"], condition=models.Q(role__isnull=False),
                                    name="mail_mailbox_one_role"),
            models.UniqueConstraint(fields=["account", "parent", "name"], name="mail_mailbox_sibling_name"),
            # A NULL parent is distinct from every other NULL in a unique index: top level apart.
            models.UniqueConstraint(fields=["account", "name"], condition=models.Q(parent__isnull=True),
                                    name="mail_mailbox_top_name"),
        ]


class Email(models.Model):
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    blob_id = models.CharField(max_length=64, help_text="The account's JMAP blob id of the raw message.")
    thread = models.ForeignKey(Thread, on_delete=models.RESTRICT, related_name="emails")
    # mail.mime.parse(raw).as_dict() minus the search text (that goes to the full-text index).
    meta = models.JSONField()
    # The list properties of `meta` (store.LIST_PROPS: subject, addresses, preview, …), what a
    # mailbox listing's Email/get reads: a small document to decode instead of the whole `meta`.
    summary = models.JSONField(default=dict)
    keywords = models.JSONField(default=dict)
    received_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True)
    size = models.PositiveBigIntegerField()
    sort_from = models.CharField(max_length=255, default="")
    sort_to = models.CharField(max_length=255, default="")
    sort_subject = models.CharField(max_length=255, default="")
    has_attachment = models.BooleanField(default=False)
    message_id = models.CharField(max_length=255, null=True)
    # {"headers": "\n<name>: <value>" lines}: what the `header` filter matches. The text filters'
    # text (mail.mime's search dict) lives in the full-text index (fulltext.Document).
    search = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["account", "received_at", "id"], name="mail_email_received"),
            models.Index(fields=["account", "size", "id"], name="mail_email_size"),
            models.Index(fields=["account", "sent_at", "id"], name="mail_email_sent"),
            models.Index(fields=["account", "sort_from", "id"], name="mail_email_from"),
            models.Index(fields=["account", "sort_to", "id"], name="mail_email_to"),
            models.Index(fields=["account", "sort_subject", "id"], name="mail_email_subject"),
            models.Index(fields=["account", "message_id"], name="mail_email_message_id"),
            models.Index(fields=["thread", "received_at"], name="mail_email_thread"),
        ]


class Membership(models.Model):
    """An email in a mailbox, with the email's receivedAt copied so that a mailbox's newest
    emails are one ordered index range."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="memberships")
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "mailbox"], name="mail_membership_unique")]
        indexes = [models.Index(fields=["mailbox", "received_at", "email"], name="mail_membership_recent")]


class Keyword(models.Model):
    """A keyword of an email (lower case, RFC 8621 §4.1.1), for hasKeyword/notKeyword probes."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="+")
    keyword = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "keyword"], name="mail_keyword_unique")]
