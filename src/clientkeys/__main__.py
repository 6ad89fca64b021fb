"""`python -m clientkeys` runs the command line."""

from clientkeys.cli import main

if __name__ == "__main__":
    main()
