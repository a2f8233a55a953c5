"""Run localstripe (PyPI) on 127.0.0.1:<port>, keeping its store in memory only.

localstripe's own entry point listens on every interface and pickles its whole store to
/tmp after every write; for tests we want neither.
"""

import sys

from aiohttp import web
from localstripe import resources
from localstripe.server import app

resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
