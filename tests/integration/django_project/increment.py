"""One process of the no-lost-update test: N read-modify-write increments
of one Choice through the ORM, each in its own acquire_table_lock() block.

Usage: python3 increment.py CHOICE_ID N   (env: as djproject.settings)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "client", "python"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django  # noqa: E402

django.setup()

from polls.models import Choice  # noqa: E402
from tablelock.django import acquire_table_lock  # noqa: E402


def main():
    choice_id, count = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(count):
        with acquire_table_lock(write=[Choice], wait_ms=60000):
            choice = Choice.objects.get(id=choice_id)
            choice.votes += 1
            choice.save(update_fields=["votes"])


if __name__ == "__main__":
    main()
