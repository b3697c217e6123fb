from django.db import models


class SingletonModel(models.Model):
    """A settings object with exactly one row (primary key 1), created with its defaults."""

    SINGLETON_PK = 1

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls):
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj


class ObjectState(models.Model):
    """A counter per object type, bumped in the transaction of every change to that type.

    It is the database-side truth that caches key on: any worker or node that reads a newer
    state ignores what it cached under an older one, whichever cache backend is configured.
    It is also the JMAP state string of the type.
    """

    name = models.CharField(max_length=64, primary_key=True)
    state = models.BigIntegerField(default=0)


class AuditEvent(models.Model):
    """One changed property of one object: who, when, old and new value (secrets masked)."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DESTROY = "destroy", "Destroyed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=320, help_text="Who made the change.")
    object_type = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=64)
    action = models.CharField(max_length=16, choices=Action.choices)
    field = models.CharField(max_length=128, blank=True)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit event"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type} {self.object_id} {self.field}"


class ChangeLog(models.Model):
    """One created, updated or destroyed object, stamped with its type's new state.

    It lets JMAP clients ask x:T/changes since the state they cached.
    """

    object_type = models.CharField(max_length=64)
    state = models.BigIntegerField()
    object_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=9)  # created | updated | destroyed
    # The tenant of the object when it changed (registry imports no other app: a plain id), so
    # that a tenant's administrators are told only about their own tenant's objects.
    tenant_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["object_type", "state"])]
