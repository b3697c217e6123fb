"""The contact store's tables: address books, the cards in them, and the index of each card's
searchable properties (written when the card is stored, so a query never parses a vCard).

The store knows no protocol: a card is named by the last segment of its href (`name`) inside
its book (`slug`); the DAV layer builds the URL around them. See docs/contacts.md.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class AddressBook(models.Model):
    """One address book of one account."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    # The collection's segment in its href, as the client chose it (MKCOL) or "default".
    slug = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255, blank=True, default="")
    description = models.TextField(blank=True, default="")
    # Dead properties a DAV client set (colours, order): {"{namespace}name": "<xml …/>"}.
    properties = models.JSONField(default=dict, blank=True)
    # Grants to other accounts, as the ACL method set them: [{"principal": account id,
    # "rights": [...]}] (the shape dav.access reads); `shared` marks the books that have any.
    acl = models.JSONField(default=list, blank=True)
    shared = models.BooleanField(default=False, db_index=True)
    # Bumped in the transaction of every write to the book or one of its cards: the book's ctag.
    # The UPDATE that bumps it also serialises the writers of one book (the UID check).
    revision = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "slug"], name="contacts_book_slug")]

    def __str__(self):
        return f"{self.slug} of account {self.account_id}"


class Card(models.Model):
    """One vCard, stored as the client sent it (after validation)."""

    book = models.ForeignKey(AddressBook, on_delete=models.CASCADE, related_name="cards")
    # The last segment of the card's href, as the client chose it.
    name = models.CharField(max_length=255)
    uid = models.TextField()
    # SHA-256 of the UID: the unique key (a UID has no length limit; an index entry has).
    uid_key = models.CharField(max_length=64)
    data = models.TextField()
    version = models.CharField(max_length=3, help_text='The vCard version as stored: "3.0" or "4.0".')
    kind = models.CharField(max_length=16, default="individual")
    # The formatted name, cut to fit, for listings; the index keeps the whole value.
    fn = models.CharField(max_length=255, blank=True, default="")
    etag = models.CharField(max_length=66)
    size = models.PositiveIntegerField()
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["book", "name"], name="contacts_card_name"),
                       models.UniqueConstraint(fields=["book", "uid_key"], name="contacts_card_uid")]

    def __str__(self):
        return self.name


class CardProperty(models.Model):
    """One searchable value of one card: a property instance, or one item of a list property
    (CATEGORIES, NICKNAME). Binary properties (PHOTO, LOGO, SOUND, KEY) are listed with an
    empty value, so that existence tests still work without keeping their data twice."""

    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="index")
    # Denormalised so that a query's pre-selection is one index range (book, name).
    book = models.ForeignKey(AddressBook, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=255)
    group = models.CharField(max_length=255, blank=True, default="")
    value = models.TextField(blank=True, default="")
    # The value under i;unicode-casemap (RFC 5051, see contacts.vcard.fold).
    folded = models.TextField(blank=True, default="")
    # Parameter name -> values, names upper-cased: what a param-filter reads.
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["book", "name"], name="contacts_index_book_name")]

    def __str__(self):
        return f"{self.name}: {self.value[:40]}"
