"""`python -m mpireg.data`: the data tool (mpireg/convert/tool.py), kept under its documented name."""
import sys

from ..convert.tool import main

if __name__ == "__main__":
    sys.exit(main())
