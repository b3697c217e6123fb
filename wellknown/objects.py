from registry.declaration import ObjectType, register

from . import models

MTA_STS = register(ObjectType(
    model=models.MtaSts, name="MtaSts", singleton=True, section="Settings › MTA › MTA-STS",
    description="The MTA-STS policy (RFC 8461) published at /.well-known/mta-sts.txt.",
    groups=[("Policy", ["mode", "max_age", "mx_hosts"])],
    enum_names={"mode": "MtaStsMode"},
))
