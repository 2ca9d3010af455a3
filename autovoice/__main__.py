import sys

from autovoice.cli import main

sys.exit(main())
