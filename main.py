"""MetaCanvas Studio.

    python main.py                 opens the studio
    python main.py COMMAND ...     runs the command line (python main.py --help lists the commands)
"""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
