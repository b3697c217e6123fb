from django.contrib.admin.apps import AdminConfig


class StalwartAdminConfig(AdminConfig):
    default_site = "stalwart_site.admin_site.StalwartAdminSite"
