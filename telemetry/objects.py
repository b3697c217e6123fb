from registry.composites import Composite, decode_secret, encode_secret
from registry.declaration import ObjectType, register

from . import models

_F = "prometheus_"
ENABLED, USERNAME, KIND, SECRET, VARIABLE, FILE = (
    _F + "enabled", _F + "auth_username", _F + "auth_secret_kind", _F + "auth_secret", _F + "auth_secret_variable",
    _F + "auth_secret_file",
)
Kind = models.Metrics.SecretKind
SECRET_KINDS = {Kind.NONE: "None", Kind.VALUE: "Value", Kind.ENVIRONMENT_VARIABLE: "EnvironmentVariable",
                Kind.FILE: "File"}


class PrometheusChoice(Composite):
    """The reference's MetricsPrometheus over six fields:

    {"@type": "Disabled"} or {"@type": "Enabled", "authUsername": "…"|null, "authSecret": S}, where S is
    {"@type": "None"}, {"@type": "Value", "secret": "…"}, {"@type": "EnvironmentVariable",
    "variableName": "…"} or {"@type": "File", "filePath": "…"}. A stored Value secret reads "****";
    writing "****" back keeps it.
    """

    name = "prometheus"
    type_name = "MetricsPrometheus"
    fields = (ENABLED, USERNAME, KIND, SECRET, VARIABLE, FILE)

    def encode(self, values):
        if not values[ENABLED]:
            return {"@type": "Disabled"}
        secret = encode_secret(values[KIND], values[SECRET], values[VARIABLE], values[FILE], SECRET_KINDS)
        return {"@type": "Enabled", "authUsername": values[USERNAME] or None, "authSecret": secret}

    def decode(self, value):
        if not isinstance(value, dict) or value.get("@type") not in ("Disabled", "Enabled"):
            raise self.bad(f"{self.name}/@type" if isinstance(value, dict) else "")
        allowed = {"@type"} if value["@type"] == "Disabled" else {"@type", "authUsername", "authSecret"}
        extra = sorted(set(value) - allowed)
        if extra:
            raise self.bad(f"{self.name}/{extra[0]}")
        out = {ENABLED: False, USERNAME: "", KIND: Kind.NONE, SECRET: "", VARIABLE: "", FILE: ""}
        if value["@type"] == "Disabled":
            return out
        out[ENABLED] = True
        username = value.get("authUsername")
        if username is not None and not isinstance(username, str):
            raise self.bad(f"{self.name}/authUsername")
        out[USERNAME] = username or ""
        if value.get("authSecret") is None:
            return out
        # The same SecretKeyOptional as every other secret; here the model hashes the value.
        secret = decode_secret(value["authSecret"], f"{self.name}/authSecret", SECRET_KINDS)
        out.update({KIND: secret["kind"], VARIABLE: secret["variable"], FILE: secret["file"]})
        if "value" in secret:
            out[SECRET] = secret["value"]
        else:
            del out[SECRET]  # "****" stands for the stored secret: leave it as it is
        return out


METRICS = register(ObjectType(
    model=models.Metrics, name="Metrics", singleton=True, section="Settings › Telemetry › Metrics",
    description="Whether the Prometheus metrics are served at /metrics/prometheus, and the credentials a "
    "scraper must present.",
    groups=[("Prometheus", [ENABLED, USERNAME, KIND, SECRET, VARIABLE, FILE])],
    secret=(SECRET,),
    composites=[PrometheusChoice()],
))
