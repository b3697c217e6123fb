from registry.composites import Composite
from registry.declaration import ObjectType, register

from . import models
from .models import MASK

_F = "prometheus_"
ENABLED, USERNAME, KIND, SECRET, VARIABLE, FILE = (
    _F + "enabled", _F + "auth_username", _F + "auth_secret_kind", _F + "auth_secret", _F + "auth_secret_variable",
    _F + "auth_secret_file",
)
Kind = models.Metrics.SecretKind


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
    SECRET_TYPES = {Kind.NONE: "None", Kind.VALUE: "Value", Kind.ENVIRONMENT_VARIABLE: "EnvironmentVariable",
                    Kind.FILE: "File"}
    SECRET_KEYS = {"None": (), "Value": ("secret",), "EnvironmentVariable": ("variableName",), "File": ("filePath",)}

    def encode(self, values):
        if not values[ENABLED]:
            return {"@type": "Disabled"}
        kind = values[KIND]
        secret = {"@type": self.SECRET_TYPES.get(kind, "None")}
        if kind == Kind.VALUE:
            secret["secret"] = MASK if values[SECRET] else ""
        elif kind == Kind.ENVIRONMENT_VARIABLE:
            secret["variableName"] = values[VARIABLE]
        elif kind == Kind.FILE:
            secret["filePath"] = values[FILE]
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
        secret = value.get("authSecret")
        if secret is None:
            return out
        path = f"{self.name}/authSecret"
        if not isinstance(secret, dict) or secret.get("@type") not in self.SECRET_KEYS:
            raise self.bad(f"{path}/@type" if isinstance(secret, dict) else path)
        variant = secret["@type"]
        keys = self.SECRET_KEYS[variant]
        extra = sorted(set(secret) - {"@type", *keys})
        if extra:
            raise self.bad(f"{path}/{extra[0]}")
        for key in keys:
            if not isinstance(secret.get(key), str):
                raise self.bad(f"{path}/{key}")
        out[KIND] = {v: k for k, v in self.SECRET_TYPES.items()}[variant]
        if variant == "Value":
            if secret["secret"] == MASK:
                del out[SECRET]  # "****" stands for the stored secret: leave it as it is
            else:
                out[SECRET] = secret["secret"]
        elif variant == "EnvironmentVariable":
            out[VARIABLE] = secret["variableName"]
        elif variant == "File":
            out[FILE] = secret["filePath"]
        return out


METRICS = register(ObjectType(
    model=models.Metrics, name="Metrics", singleton=True, section="Settings › Telemetry › Metrics",
    description="Whether the Prometheus metrics are served at /metrics/prometheus, and the credentials a "
    "scraper must present.",
    groups=[("Prometheus", [ENABLED, USERNAME, KIND, SECRET, VARIABLE, FILE])],
    secret=(SECRET,),
    composites=[PrometheusChoice()],
))
