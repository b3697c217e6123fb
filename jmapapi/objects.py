from registry.declaration import ObjectType, register

from . import models

JMAP = register(ObjectType(
    model=models.Jmap, name="Jmap", singleton=True, section="Settings › JMAP › Limits",
    description="Configures JMAP protocol limits.",
    groups=[
        ("Requests", ["max_request_size", "max_method_calls", "max_concurrent_requests"]),
        ("Methods", ["get_max_results", "set_max_objects", "query_max_results", "changes_max_results"]),
        ("Uploads", ["max_upload_size", "max_concurrent_uploads", "upload_quota", "max_upload_count", "upload_ttl"]),
    ],
    property_names={"get_max_results": "getMaxResults", "set_max_objects": "setMaxObjects"},
))
