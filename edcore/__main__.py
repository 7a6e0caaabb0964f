"""``python -m edcore`` runs the ``edflow`` command (used by ``torchrun -m edcore ...``)."""
import sys

from edcore.cli import main

sys.exit(main())
