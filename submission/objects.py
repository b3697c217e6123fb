"""Declarations of the management objects this app owns (see registry.declaration)."""
from registry.composites import SecretKeyOptional
from registry.declaration import ObjectType, register

from . import models

MTA_ROUTE = register(ObjectType(
    model=models.MtaRoute, name="MtaRoute", section="Settings › MTA › Outbound › Routes",
    description="A relay host that outbound mail (EmailSubmission) is handed to over SMTP, with its TLS and "
    "authentication settings.",
    groups=[
        ("Route", ["name", "description"]),
        ("Relay host", ["address", "port", "implicit_tls", "start_tls", "allow_invalid_certs", "timeout"]),
        ("Authentication", ["auth_username", "auth_secret_kind", "auth_secret", "auth_secret_variable",
                            "auth_secret_file"]),
    ],
    create_only=("name",),
    secret=("auth_secret",),
    label_property="name",
    enum_names={"start_tls": "MtaStartTls"},
    composites=[
        SecretKeyOptional("authSecret", "auth_secret_kind", "auth_secret", "auth_secret_variable",
                          "auth_secret_file", description="The secret to authenticate with: none, a value (stored "
                          "encrypted), an environment variable or a file, read at each connection."),
    ],
))
