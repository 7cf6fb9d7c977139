"""``python -m verinet.cli ...``: the console script ``verinet`` (:func:`verinet.cli.run`,
which ends with ``os._exit``)."""

from verinet.cli import run

if __name__ == "__main__":
    run()
