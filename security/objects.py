from registry.composites import RateChoice
from registry.declaration import ObjectType, register

from . import models
from .services import drop_lists

register(ObjectType(
    model=models.Security, name="Security", singleton=True, section="Settings › Security › Auto-ban",
    description="Thresholds of automatic IP banning.",
    groups=[("Authentication failures", ["auth_ban_rate_count", "auth_ban_rate_period", "auth_ban_period"]),
            ("Scanners", ["scan_ban_paths", "scan_ban_period"])],
    composites=[RateChoice("authBanRate", "auth_ban_rate_count", "auth_ban_rate_period")],
    on_change=lambda obj: drop_lists(),
))
register(ObjectType(
    model=models.BlockedIp, name="BlockedIp", section="Settings › Security › Blocked IPs",
    description="Addresses refused before anything else.",
    groups=[("Blocked address", ["address", "reason", "expires_at", "created_at"])],
    create_only=("address",),
    server_set=("created_at",), on_change=lambda obj: drop_lists(),
))
register(ObjectType(
    model=models.AllowedIp, name="AllowedIp", section="Settings › Security › Allowed IPs",
    description="Addresses never banned nor rate-limited.",
    groups=[("Allowed address", ["address", "description", "expires_at", "created_at"])],
    create_only=("address",),
    server_set=("created_at",), on_change=lambda obj: drop_lists(),
))
