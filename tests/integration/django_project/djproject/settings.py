"""Settings of the small Django project the Django integration is tested
with (tests/integration/test_django.py) and measured with (bench/django.py).

Django's own connection is its MySQL backend on the test MariaDB
($TABLELOCK_TEST_MYSQL_SOCKET, as root, database app); tablelockd is at
$TABLELOCK_TEST_DAEMON_SOCKET. Nothing here is tablelockd-specific except
the TABLELOCK setting: the switch to tablelockd is the import.
"""

import os

SECRET_KEY = "tablelock-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["polls"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "app",
        "USER": "root",
        "PASSWORD": "",
        "HOST": os.environ.get("TABLELOCK_TEST_MYSQL_SOCKET", "/run/mysqld/mysqld.sock"),
        "OPTIONS": {"charset": "utf8mb4"},
    },
}

TABLELOCK = {
    "socket": os.environ.get("TABLELOCK_TEST_DAEMON_SOCKET"),
    "client": "django-tests",
}
