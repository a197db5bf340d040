"""`python train.py loss=dice` from the repository root: a thin shim over dicebert.train."""

from dicebert.train import main

if __name__ == "__main__":
    main()
