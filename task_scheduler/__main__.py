"""``python -m task_scheduler`` does what the ``task_scheduler`` command does."""

import sys

from task_scheduler.cli import main

sys.exit(main())
