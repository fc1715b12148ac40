import sys

from hutch.shim.main import main

sys.exit(main())
