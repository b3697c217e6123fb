from registry.declaration import ObjectType, register  # noqa: F401
