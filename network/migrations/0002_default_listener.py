"""The first HTTP listener: where `make run` served before listeners were objects (HOST and PORT
at migration time, 127.0.0.1:8080 by default)."""
import ipaddress
import os

from django.db import migrations


def create(apps, schema_editor):
    NetworkListener = apps.get_model("network", "NetworkListener")
    if NetworkListener.objects.exists():
        return
    host = os.environ.get("HOST", "127.0.0.1").strip("[]")
    port = os.environ.get("PORT", "8080")
    try:
        bind = f"[{host}]:{port}" if ipaddress.ip_address(host).version == 6 else f"{host}:{port}"
    except ValueError:
        bind = f"127.0.0.1:{port}"
    NetworkListener.objects.create(name="http", bind=[bind], protocol="http", use_tls=False, enabled=True)


class Migration(migrations.Migration):
    dependencies = [("network", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
