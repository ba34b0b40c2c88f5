"""`python -m mpireg.convert`: the data tool, as `python -m mpireg.data`."""
import sys

from .tool import main

if __name__ == "__main__":
    sys.exit(main())
