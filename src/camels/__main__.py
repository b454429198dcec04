import sys

from camels.cli import main

sys.exit(main())
